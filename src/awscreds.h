/* awscreds: the AWS default credential chain's decisions (core: no I/O, no
 * clock).
 *
 * What the chain reads (the environment, the shared credentials and config
 * files' text) and what its sources answer (STS XML, the container
 * endpoint's and IMDS's JSON) are parameters; creds.c does the fetching.
 * The chain's order is the SDKs': static keys, environment, profile, web
 * identity, container, instance metadata (docs/CREDENTIALS.md). The first
 * configured source is chosen once; a role_arn is assumed on top of it.
 */
#ifndef SESGATE_AWSCREDS_H
#define SESGATE_AWSCREDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "buf.h"

/* A set of credentials. */
struct awscreds {
    char *access_key_id;     /* owned */
    char *secret_access_key; /* owned; a secret */
    char *session_token;     /* owned; a secret; "" = none */
    time_t expiration;       /* 0 = never */
};

/* Free c's strings and zero it. */
void awscreds_cleanup(struct awscreds *c);

/* Copy src into dst (dst is overwritten, not freed). */
void awscreds_copy(struct awscreds *dst, const struct awscreds *src);

/* Where the base credentials come from. */
enum awscreds_source {
    AWSCREDS_STATIC,       /* keys in the upstream's section */
    AWSCREDS_ENV,          /* AWS_ACCESS_KEY_ID ... */
    AWSCREDS_PROFILE,      /* static keys of a profile of the shared files */
    AWSCREDS_WEB_IDENTITY, /* AssumeRoleWithWebIdentity with a token file */
    AWSCREDS_CONTAINER,    /* ECS / EKS Pod Identity container endpoint */
    AWSCREDS_IMDS,         /* EC2 instance metadata (IMDSv2) */
};

/* A role assumed with STS AssumeRole. */
struct awscreds_role {
    char *arn;          /* owned */
    char *external_id;  /* owned; "" = none */
    char *session_name; /* owned */
};

/* The chain chosen for one upstream. */
struct awscreds_plan {
    enum awscreds_source source;
    struct awscreds base; /* STATIC, ENV, PROFILE: the keys (never expire) */
    /* WEB_IDENTITY */
    char *token_file, *web_role_arn, *web_session_name;
    /* CONTAINER: the URL, the token (literal) or its file; "" = none */
    char *container_url, *container_token, *container_token_file;
    /* IMDS: the endpoint, no trailing slash */
    char *imds_endpoint;
    /* STS: its endpoint (no trailing slash) and region */
    char *sts_endpoint, *sts_region;
    struct awscreds_role *roles; /* assumed in order on top of the base */
    size_t nroles;
    char *description; /* the source, never a secret */
};

/* What the upstream's configuration says (all strings "" when unset). */
struct awscreds_params {
    const char *access_key_id, *secret_access_key, *session_token;
    bool from_env; /* the static keys came from the environment */
    const char *profile;
    const char *role_arn, *external_id, *session_name;
    const char *region;
    const char *hostname; /* for the default session name sesgate-<hostname> */
};

/* Value of name in envp ("NAME=value" strings, NULL-terminated), or NULL. */
const char *awscreds_env(char *const *envp, const char *name);

/* The shared files' paths: AWS_SHARED_CREDENTIALS_FILE / AWS_CONFIG_FILE,
 * else under $HOME/.aws; "" when neither is set nor HOME is known. */
void awscreds_file_paths(char *const *envp, struct buf *credentials, struct buf *config);

/* Choose the chain for p with environment envp and the text of the shared
 * credentials and config files (NULL: no such file). Returns 0, or -1 with
 * a reason in err (no source, a broken profile, a source_profile cycle).
 * plan is always to be cleaned up. */
int awscreds_plan_make(struct awscreds_plan *plan, const struct awscreds_params *p,
                       char *const *envp, const char *credentials_text, const char *config_text,
                       char *err, size_t errlen);

/* Free plan. */
void awscreds_plan_cleanup(struct awscreds_plan *plan);

/* True when plan's credentials never expire (no fetch, no refresh). */
bool awscreds_plan_static(const struct awscreds_plan *plan);

/* A full container URL is accepted: https anywhere; http only to a loopback
 * address, 169.254.170.2, 169.254.170.23 or [fd00:ec2::23]. */
bool awscreds_container_url_ok(const char *url);

/* The form body of an STS AssumeRole call for role r (DurationSeconds 3600). */
void awscreds_assume_role_body(const struct awscreds_role *r, struct buf *out);

/* The form body of an STS AssumeRoleWithWebIdentity call. */
void awscreds_web_identity_body(const char *role_arn, const char *session_name, const char *token,
                                size_t token_len, struct buf *out);

/* Read an STS answer (AssumeRole or AssumeRoleWithWebIdentity) of n bytes.
 * Returns 0 with out set (to be cleaned up), or -1 with the STS error's code
 * and message (or what is wrong with the answer) in err. */
int awscreds_parse_sts(const char *body, size_t n, struct awscreds *out, char *err, size_t errlen);

/* Read a container endpoint's or IMDS's credentials JSON of n bytes
 * (AccessKeyId, SecretAccessKey, Token, Expiration; IMDS's Code must be
 * Success when present). Returns 0 with out set, or -1 with a reason. */
int awscreds_parse_json(const char *body, size_t n, struct awscreds *out, char *err, size_t errlen);

/* The first role name of IMDS's security-credentials listing (n bytes) into
 * out; -1 when there is none or it is not a plain name. */
int awscreds_imds_role(const char *body, size_t n, char *out, size_t outlen);

/* An ISO 8601 UTC time ("2026-12-08T03:00:00Z", fractional seconds and a
 * +hh:mm / -hh:mm offset accepted) of n bytes into *out. Returns 0 or -1. */
int awscreds_parse_time(const char *s, size_t n, time_t *out);

/* When to fetch again (seconds since the epoch), now being now: after a
 * success (failures 0) at the earlier of expiration - 5 min and half the
 * remaining lifetime (half the lifetime when expiration - 5 min is past),
 * never later than expiration - 2 s nor sooner than 1 s from now;
 * after failures failed fetches in a row, 1 s doubling to 60 s, never past
 * expiration while it is ahead. expiration 0 (never): -1, no fetch. */
int64_t awscreds_next_fetch(int64_t now, int64_t expiration, unsigned failures);

#endif
