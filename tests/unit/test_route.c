/* test_route: which upstream a call goes to: the client's own upstream,
 * then the senders, then the signed region, then [upstream]; and the
 * regions a client may sign for. */
#include "route.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

static const char route_ini[] = "[upstream]\n"
                                "endpoint = https://email.us-east-1.amazonaws.com\n"
                                "region = us-east-1\n"
                                "access_key_id = AKIDDEFAULT\n"
                                "secret_access_key = s0\n"
                                "[upstream.eu]\n"
                                "endpoint = https://email.eu-west-1.amazonaws.com\n"
                                "region = eu-west-1\n"
                                "access_key_id = AKIDEU\n"
                                "secret_access_key = s1\n"
                                "senders = *@eu.example.com, boss@example.org\n"
                                "[upstream.eu2]\n"
                                "endpoint = https://email.eu-west-1.amazonaws.com\n"
                                "region = eu-west-1\n"
                                "access_key_id = AKIDEU2\n"
                                "secret_access_key = s2\n"
                                "senders = *@eu.example.com, *@eu2.example.com\n"
                                "[upstream.ap]\n"
                                "endpoint = https://email.ap-south-1.amazonaws.com\n"
                                "region = ap-south-1\n"
                                "access_key_id = AKIDAP\n"
                                "secret_access_key = s3\n"
                                "[client.plain]\n"
                                "access_key_id = AKIDPLAINCLIENT01\n"
                                "secret_access_key = plainsecret0000000\n"
                                "[client.pinned]\n"
                                "access_key_id = AKIDPINNEDCLIENT1\n"
                                "secret_access_key = pinnedsecret000000\n"
                                "upstream = ap\n";

struct route_case {
    const char *name;
    const char *client; /* NULL: none */
    const char *from[2];
    const char *region; /* NULL: unknown */
    const char *want;   /* the upstream's name */
};

static const struct route_case route_cases[] = {
    {"nothing matches: [upstream]", "plain", {"a@example.com"}, "us-east-1", "default"},
    {"no region, no sender: [upstream]", "plain", {NULL}, NULL, "default"},
    {"an unknown region: [upstream]", "plain", {"a@example.com"}, "sa-east-1", "default"},
    {"the region", "plain", {"a@example.com"}, "ap-south-1", "ap"},
    {"the first upstream of the region", "plain", {"a@example.com"}, "eu-west-1", "eu"},
    {"a sender domain", "plain", {"a@eu.example.com"}, "us-east-1", "eu"},
    {"the first upstream whose senders match", "plain", {"x@eu.example.com"}, "eu-west-1", "eu"},
    {"a later upstream's senders", "plain", {"x@eu2.example.com"}, NULL, "eu2"},
    {"a sender address", "plain", {"boss@example.org"}, "ap-south-1", "eu"},
    {"another address of that domain", "plain", {"clerk@example.org"}, NULL, "default"},
    {"a sender domain, case-insensitive", "plain", {"a@EU.Example.COM"}, NULL, "eu"},
    {"a subdomain is another domain", "plain", {"a@x.eu.example.com"}, NULL, "default"},
    {"the second sender matches", "plain", {"a@example.com", "b@eu2.example.com"}, NULL, "eu2"},
    {"the sender outranks the region", "plain", {"a@eu2.example.com"}, "ap-south-1", "eu2"},
    {"the client's upstream outranks all", "pinned", {"a@eu.example.com"}, "eu-west-1", "ap"},
    {"no client", NULL, {"a@eu2.example.com"}, NULL, "eu2"},
};

static void route_run(const struct config *cfg, const struct route_case *c)
{
    const struct config_client *cl = config_client_by_name(cfg, c->client);
    size_t nfrom = c->from[1] ? 2 : c->from[0] ? 1 : 0;
    size_t u = route_pick(cfg, cl, (char *const *)c->from, nfrom, c->region,
                          c->region ? strlen(c->region) : 0);
    CHECK(u < cfg->nupstreams, "%s: index %zu", c->name, u);
    if (u < cfg->nupstreams)
        CHECK_STR(cfg->upstreams[u].name, c->want, c->name);
}

/* One [upstream]: everything goes there, whatever the client signs for. */
static void route_single(void)
{
    struct config cfg = {0};
    config_defaults(&cfg);
    const char *from[1] = {"a@eu.example.com"};
    CHECK(cfg.nupstreams == 1, "defaults: %zu upstreams", cfg.nupstreams);
    CHECK(route_pick(&cfg, NULL, (char *const *)from, 1, "eu-west-1", 9) == 0, "single");
    config_free(&cfg);
}

int main(void)
{
    char dir[] = "/tmp/sesgate-test-route-XXXXXX";
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 2;
    }
    char path[128];
    snprintf(path, sizeof path, "%s/t.ini", dir);
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        perror(path);
        return 2;
    }
    fputs(route_ini, f);
    fclose(f);
    struct config cfg = {0};
    struct buf err = BUF_INIT;
    int rc = config_load(&cfg, path, (char *const *)(const char *[]){NULL}, &err);
    CHECK(rc == 0, "config: %s", buf_cstr(&err));
    if (rc == 0) {
        CHECK(cfg.nupstreams == 4, "upstreams: %zu", cfg.nupstreams);
        for (size_t i = 0; i < sizeof route_cases / sizeof route_cases[0]; i++)
            route_run(&cfg, &route_cases[i]);
        CHECK(route_region_known(&cfg, "eu-west-1", 9), "eu-west-1 known");
        CHECK(route_region_known(&cfg, "us-east-1", 9), "us-east-1 known");
        CHECK(!route_region_known(&cfg, "us-east-", 8), "a region's prefix is not known");
        CHECK(!route_region_known(&cfg, "sa-east-1", 9), "sa-east-1 unknown");
    }
    config_free(&cfg);
    buf_free(&err);
    unlink(path);
    rmdir(dir);
    route_single();
    return check_done("test_route");
}
