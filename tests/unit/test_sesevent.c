/* test_sesevent: AWS's example SES notifications (tests/unit/testdata/sesevent,
 * relative to the repository root, where the tests run), each checked
 * field by field against a table; malformed events refused with reasons.
 */
#include "sesevent.h"

#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "check.h"

#define TEST_DIR  "tests/unit/testdata/sesevent"
#define TEST_MID  "EXAMPLE7c191be45-e9aedb9a-02f9-4d12-a87d-dd0099a07f8a-000000"
#define TEST_RCPT "recipient@example.com"
#define TEST_CHROME                                                                                \
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "            \
    "Chrome/60.0.3112.90 Safari/537.36"
#define TEST_MAX_RCPT     3
#define TEST_CONTENTS_MID "000001378603177f-7a5433e7-8edb-42ae-af10-f0181f34d6ee-000000"

/* One recipient an event names, as expected. */
struct test_rcpt {
    const char *address, *action, *status, *diagnostic;
};

/* One corpus file and every value the parser must read from it (NULL:
 * absent; -1 processing time: absent). */
struct test_case {
    const char *file;
    enum sesevent_format format;
    enum sesevent_kind kind;
    enum sesevent_scope scope;
    const char *type, *message_id, *mail_timestamp, *source;
    size_t ndestination;
    const char *destination[TEST_MAX_RCPT];
    size_t ntags;
    const char *tag_name, *tag_value;
    size_t nrecipients;
    struct test_rcpt rcpt[TEST_MAX_RCPT];
    const char *timestamp;
    enum sesevent_bounce_type bounce;
    const char *bounce_type, *bounce_subtype;
    const char *feedback_type, *arrival_date;
    long long processing_ms;
    const char *smtp_response;
    const char *delay_type, *expiration_time;
    const char *reason, *template_name, *error_message;
    const char *ip_address, *user_agent, *link;
    const char *contact_list, *subscription_source;
};

static const struct test_case test_cases[] = {
    {.file = "event-bounce.json",
     .format = SESEVENT_EVENTPUB,
     .kind = SESEVENT_BOUNCE,
     .scope = SESEVENT_SCOPE_RECIPIENTS,
     .type = "Bounce",
     .message_id = TEST_MID,
     .mail_timestamp = "2017-08-05T00:40:02.012Z",
     .source = "Sender Name <sender@example.com>",
     .ndestination = 1,
     .destination = {TEST_RCPT},
     .ntags = 4,
     .tag_name = "ses:configuration-set",
     .tag_value = "ConfigSet",
     .nrecipients = 1,
     .rcpt = {{TEST_RCPT, "failed", "5.1.1", "smtp; 550 5.1.1 user unknown"}},
     .timestamp = "2017-08-05T00:41:02.669Z",
     .bounce = SESEVENT_BOUNCE_PERMANENT,
     .bounce_type = "Permanent",
     .bounce_subtype = "General",
     .processing_ms = -1},
    {.file = "event-complaint.json",
     .format = SESEVENT_EVENTPUB,
     .kind = SESEVENT_COMPLAINT,
     .scope = SESEVENT_SCOPE_RECIPIENTS,
     .type = "Complaint",
     .message_id = TEST_MID,
     .mail_timestamp = "2017-08-05T00:40:01.123Z",
     .source = "Sender Name <sender@example.com>",
     .ndestination = 1,
     .destination = {TEST_RCPT},
     .ntags = 4,
     .tag_name = "ses:caller-identity",
     .tag_value = "ses_user",
     .nrecipients = 1,
     .rcpt = {{TEST_RCPT, NULL, NULL, NULL}},
     .timestamp = "2017-08-05T00:41:02.669Z",
     .feedback_type = "abuse",
     .arrival_date = "2017-08-05T00:41:02.669Z",
     .processing_ms = -1,
     .user_agent = TEST_CHROME},
    {.file = "event-delivery.json",
     .format = SESEVENT_EVENTPUB,
     .kind = SESEVENT_DELIVERY,
     .scope = SESEVENT_SCOPE_RECIPIENTS,
     .type = "Delivery",
     .message_id = TEST_MID,
     .mail_timestamp = "2016-10-19T23:20:52.240Z",
     .source = "sender@example.com",
     .ndestination = 1,
     .destination = {TEST_RCPT},
     .ntags = 7,
     .tag_name = "myCustomTag2",
     .tag_value = "myCustomTagValue2",
     .nrecipients = 1,
     .rcpt = {{TEST_RCPT, NULL, NULL, NULL}},
     .timestamp = "2016-10-19T23:21:04.133Z",
     .processing_ms = 11893,
     .smtp_response = "250 2.6.0 Message received"},
    {.file = "event-send.json",
     .format = SESEVENT_EVENTPUB,
     .kind = SESEVENT_SEND,
     .scope = SESEVENT_SCOPE_DESTINATIONS,
     .type = "Send",
     .message_id = TEST_MID,
     .mail_timestamp = "2016-10-14T05:02:16.645Z",
     .source = "sender@example.com",
     .ndestination = 1,
     .destination = {TEST_RCPT},
     .ntags = 6,
     .tag_name = "ses:source-ip",
     .tag_value = "192.0.2.0",
     .processing_ms = -1},
    {.file = "event-reject.json",
     .format = SESEVENT_EVENTPUB,
     .kind = SESEVENT_REJECT,
     .scope = SESEVENT_SCOPE_MESSAGE,
     .type = "Reject",
     .message_id = TEST_MID,
     .mail_timestamp = "2016-10-14T17:38:15.211Z",
     .source = "sender@example.com",
     .ndestination = 1,
     .destination = {"sender@example.com"},
     .ntags = 6,
     .tag_name = "ses:from-domain",
     .tag_value = "example.com",
     .processing_ms = -1,
     .reason = "Bad content"},
    {.file = "event-open.json",
     .format = SESEVENT_EVENTPUB,
     .kind = SESEVENT_OPEN,
     .scope = SESEVENT_SCOPE_DESTINATIONS,
     .type = "Open",
     .message_id = TEST_MID,
     .mail_timestamp = "2017-08-09T21:59:49.927Z",
     .source = "sender@example.com",
     .ndestination = 1,
     .destination = {TEST_RCPT},
     .ntags = 6,
     .tag_name = "ses:caller-identity",
     .tag_value = "IAM_user_or_role_name",
     .timestamp = "2017-08-09T22:00:19.652Z",
     .processing_ms = -1,
     .ip_address = "192.0.2.1",
     .user_agent = "Mozilla/5.0 (iPhone; CPU iPhone OS 10_3_3 like Mac OS X) "
                   "AppleWebKit/603.3.8 (KHTML, like Gecko) Mobile/14G60"},
    {.file = "event-click.json",
     .format = SESEVENT_EVENTPUB,
     .kind = SESEVENT_CLICK,
     .scope = SESEVENT_SCOPE_DESTINATIONS,
     .type = "Click",
     .message_id = TEST_MID,
     .mail_timestamp = "2017-08-09T23:50:05.795Z",
     .source = "sender@example.com",
     .ndestination = 1,
     .destination = {TEST_RCPT},
     .ntags = 6,
     .tag_name = "myCustomTag1",
     .tag_value = "myCustomValue1",
     .timestamp = "2017-08-09T23:51:25.570Z",
     .processing_ms = -1,
     .ip_address = "192.0.2.1",
     .user_agent = TEST_CHROME,
     .link = "http://docs.aws.amazon.com/ses/latest/DeveloperGuide/send-email-smtp.html"},
    {.file = "event-rendering-failure.json",
     .format = SESEVENT_EVENTPUB,
     .kind = SESEVENT_RENDERING_FAILURE,
     .scope = SESEVENT_SCOPE_DESTINATIONS,
     .type = "Rendering Failure",
     .message_id = TEST_MID,
     .mail_timestamp = "2018-01-22T18:43:06.197Z",
     .source = "sender@example.com",
     .ndestination = 1,
     .destination = {TEST_RCPT},
     .ntags = 1,
     .tag_name = "ses:configuration-set",
     .tag_value = "ConfigSet",
     .processing_ms = -1,
     .template_name = "MyTemplate",
     .error_message = "Attribute 'attributeName' is not present in the rendering data."},
    {.file = "event-delivery-delay.json",
     .format = SESEVENT_EVENTPUB,
     .kind = SESEVENT_DELIVERY_DELAY,
     .scope = SESEVENT_SCOPE_RECIPIENTS,
     .type = "DeliveryDelay",
     .message_id = TEST_MID,
     .mail_timestamp = "2020-06-16T00:15:40.641Z",
     .source = "sender@example.com",
     .ndestination = 1,
     .destination = {TEST_RCPT},
     .ntags = 1,
     .tag_name = "ses:configuration-set",
     .tag_value = "ConfigSet",
     .nrecipients = 1,
     .rcpt = {{TEST_RCPT, NULL, "4.4.1", "smtp; 421 4.4.1 Unable to connect to remote host"}},
     .timestamp = "2020-06-16T00:25:40.095Z",
     .processing_ms = -1,
     .delay_type = "TransientCommunicationFailure",
     .expiration_time = "2020-06-16T00:25:40.914Z"},
    {.file = "event-subscription.json",
     .format = SESEVENT_EVENTPUB,
     .kind = SESEVENT_SUBSCRIPTION,
     .scope = SESEVENT_SCOPE_DESTINATIONS,
     .type = "Subscription",
     .message_id = "EXAMPLEe4bccb684-777bc8de-afa7-4970-92b0-f515137b1497-000000",
     .mail_timestamp = "2022-01-12T01:00:14.340Z",
     .source = "sender@example.com",
     .ndestination = 1,
     .destination = {TEST_RCPT},
     .ntags = 7,
     .tag_name = "ses:operation",
     .tag_value = "SendEmail",
     .timestamp = "2022-01-12T01:00:17.910Z",
     .processing_ms = -1,
     .contact_list = "ContactListName",
     .subscription_source = "UnsubscribeHeader"},
    {.file = "notification-bounce-dsn.json",
     .format = SESEVENT_IDENTITY,
     .kind = SESEVENT_BOUNCE,
     .scope = SESEVENT_SCOPE_RECIPIENTS,
     .type = "Bounce",
     .message_id = "00000138111222aa-33322211-cccc-cccc-cccc-ddddaaaa0680-000000",
     .mail_timestamp = "2016-01-27T14:59:38.237Z",
     .source = "john@example.com",
     .ndestination = 3,
     .destination = {"jane@example.com", "mary@example.com", "richard@example.com"},
     .nrecipients = 1,
     .rcpt = {{"jane@example.com", "failed", "5.1.1",
               "smtp; 550 5.1.1 <jane@example.com>... User"}},
     .timestamp = "2016-01-27T14:59:38.237Z",
     .bounce = SESEVENT_BOUNCE_PERMANENT,
     .bounce_type = "Permanent",
     .bounce_subtype = "General",
     .processing_ms = -1},
    /* three destinations, two bounced: mary@ is not named and not touched */
    {.file = "notification-bounce-no-dsn.json",
     .format = SESEVENT_IDENTITY,
     .kind = SESEVENT_BOUNCE,
     .scope = SESEVENT_SCOPE_RECIPIENTS,
     .type = "Bounce",
     .message_id = "00000137860315fd-34208509-5b74-41f3-95c5-22c1edc3c924-000000",
     .mail_timestamp = "2016-01-27T14:59:38.237Z",
     .source = "john@example.com",
     .ndestination = 3,
     .destination = {"jane@example.com", "mary@example.com", "richard@example.com"},
     .nrecipients = 2,
     .rcpt = {{"jane@example.com", NULL, NULL, NULL}, {"richard@example.com", NULL, NULL, NULL}},
     .timestamp = "2016-01-27T14:59:38.237Z",
     .bounce = SESEVENT_BOUNCE_PERMANENT,
     .bounce_type = "Permanent",
     .bounce_subtype = "General",
     .processing_ms = -1},
    {.file = "notification-complaint-feedback.json",
     .format = SESEVENT_IDENTITY,
     .kind = SESEVENT_COMPLAINT,
     .scope = SESEVENT_SCOPE_RECIPIENTS,
     .type = "Complaint",
     .message_id = "000001378603177f-7a5433e7-8edb-42ae-af10-f0181f34d6ee-000000",
     .mail_timestamp = "2016-01-27T14:59:38.237Z",
     .source = "john@example.com",
     .ndestination = 3,
     .destination = {"jane@example.com", "mary@example.com", "richard@example.com"},
     .nrecipients = 1,
     .rcpt = {{"richard@example.com", NULL, NULL, NULL}},
     .timestamp = "2016-01-27T14:59:38.237Z",
     .feedback_type = "abuse",
     .arrival_date = "2016-01-27T14:59:38.237Z",
     .processing_ms = -1,
     .user_agent = "AnyCompany Feedback Loop (V0.01)"},
    {.file = "notification-complaint-no-feedback.json",
     .format = SESEVENT_IDENTITY,
     .kind = SESEVENT_COMPLAINT,
     .scope = SESEVENT_SCOPE_RECIPIENTS,
     .type = "Complaint",
     .message_id = "0000013786031775-163e3910-53eb-4c8e-a04a-f29debf88a84-000000",
     .mail_timestamp = "2016-01-27T14:59:38.237Z",
     .source = "john@example.com",
     .ndestination = 3,
     .destination = {"jane@example.com", "mary@example.com", "richard@example.com"},
     .nrecipients = 1,
     .rcpt = {{"richard@example.com", NULL, NULL, NULL}},
     .timestamp = "2016-01-27T14:59:38.237Z",
     .processing_ms = -1},
    {.file = "notification-delivery.json",
     .format = SESEVENT_IDENTITY,
     .kind = SESEVENT_DELIVERY,
     .scope = SESEVENT_SCOPE_RECIPIENTS,
     .type = "Delivery",
     .message_id = "0000014644fe5ef6-9a483358-9170-4cb4-a269-f5dcdf415321-000000",
     .mail_timestamp = "2016-01-27T14:59:38.237Z",
     .source = "john@example.com",
     .ndestination = 1,
     .destination = {"jane@example.com"},
     .nrecipients = 1,
     .rcpt = {{"jane@example.com", NULL, NULL, NULL}},
     .timestamp = "2016-01-27T14:59:38.237Z",
     .processing_ms = 546,
     .smtp_response = "250 ok:  Message 64111812 accepted"},
    /* composed from the object examples of "Contents of notifications" */
    {.file = "contents-bounce.json",
     .format = SESEVENT_IDENTITY,
     .kind = SESEVENT_BOUNCE,
     .scope = SESEVENT_SCOPE_RECIPIENTS,
     .type = "Bounce",
     .message_id = TEST_CONTENTS_MID,
     .mail_timestamp = "2018-10-08T14:05:45 +0000",
     .source = "sender@example.com",
     .ndestination = 1,
     .destination = {TEST_RCPT},
     .nrecipients = 2,
     .rcpt = {{"recipient1@example.com", "failed", "5.0.0", "smtp; 550 user unknown"},
              {"recipient2@example.com", "delayed", "4.0.0", NULL}},
     .timestamp = "2012-05-25T14:59:38.605Z",
     .bounce = SESEVENT_BOUNCE_PERMANENT,
     .bounce_type = "Permanent",
     .bounce_subtype = "General",
     .processing_ms = -1},
    {.file = "contents-complaint.json",
     .format = SESEVENT_IDENTITY,
     .kind = SESEVENT_COMPLAINT,
     .scope = SESEVENT_SCOPE_RECIPIENTS,
     .type = "Complaint",
     .message_id = TEST_CONTENTS_MID,
     .mail_timestamp = "2018-10-08T14:05:45 +0000",
     .source = "sender@example.com",
     .ndestination = 1,
     .destination = {TEST_RCPT},
     .nrecipients = 1,
     .rcpt = {{"recipient1@example.com", NULL, NULL, NULL}},
     .timestamp = "2012-05-25T14:59:38.623Z",
     .feedback_type = "abuse",
     .arrival_date = "2009-12-03T04:24:21.000-05:00",
     .processing_ms = -1,
     .user_agent = "ExampleCorp Feedback Loop (V0.01)"},
    {.file = "contents-delivery.json",
     .format = SESEVENT_IDENTITY,
     .kind = SESEVENT_DELIVERY,
     .scope = SESEVENT_SCOPE_RECIPIENTS,
     .type = "Delivery",
     .message_id = TEST_CONTENTS_MID,
     .mail_timestamp = "2018-10-08T14:05:45 +0000",
     .source = "sender@example.com",
     .ndestination = 1,
     .destination = {TEST_RCPT},
     .nrecipients = 1,
     .rcpt = {{"success@simulator.amazonses.com", NULL, NULL, NULL}},
     .timestamp = "2014-05-28T22:41:01.184Z",
     .processing_ms = 546,
     .smtp_response = "250 ok:  Message 64111812 accepted"},
};

#define TEST_NCASES (sizeof test_cases / sizeof test_cases[0])

/* Read a whole file into a NUL-terminated heap string (*n bytes); NULL if
 * unreadable. */
static char *test_read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    struct buf b = BUF_INIT;
    char chunk[4096];
    size_t k;
    while ((k = fread(chunk, 1, sizeof chunk, f)) > 0)
        buf_add(&b, chunk, k);
    fclose(f);
    return buf_detach(&b, n);
}

/* Compare an optional string: both NULL, or equal. */
static void test_opt(const char *file, const char *what, const char *got, const char *want)
{
    if (want == NULL)
        CHECK(got == NULL, "%s: %s: got \"%s\", want none", file, what, got ? got : "");
    else
        CHECK(got != NULL && strcmp(got, want) == 0, "%s: %s: got \"%s\", want \"%s\"", file, what,
              got ? got : "(none)", want);
}

/* Parse one corpus file and check every field against its row. */
static void test_corpus_case(const struct test_case *t)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", TEST_DIR, t->file);
    size_t n = 0;
    char *text = test_read_file(path, &n);
    CHECK(text != NULL, "%s: unreadable", path);
    if (text == NULL)
        return;
    struct sesevent ev;
    char err[256];
    int rc = sesevent_parse(text, n, &ev, err, sizeof err);
    CHECK(rc == 0, "%s: refused: %s", t->file, err);
    free(text);
    if (rc != 0)
        return;
    CHECK(ev.format == t->format, "%s: format %d, want %d", t->file, ev.format, t->format);
    CHECK(ev.kind == t->kind, "%s: kind %d, want %d", t->file, ev.kind, t->kind);
    CHECK(ev.scope == t->scope, "%s: scope %d, want %d", t->file, ev.scope, t->scope);
    CHECK_STR(sesevent_kind_name(ev.kind), t->type, t->file);
    test_opt(t->file, "type", ev.type, t->type);
    test_opt(t->file, "messageId", ev.message_id, t->message_id);
    test_opt(t->file, "mail.timestamp", ev.mail_timestamp, t->mail_timestamp);
    test_opt(t->file, "source", ev.source, t->source);
    CHECK(ev.ndestination == t->ndestination, "%s: %zu destinations, want %zu", t->file,
          ev.ndestination, t->ndestination);
    for (size_t i = 0; i < ev.ndestination && i < t->ndestination; i++)
        test_opt(t->file, "destination", ev.destination[i], t->destination[i]);
    CHECK(ev.ntags == t->ntags, "%s: %zu tags, want %zu", t->file, ev.ntags, t->ntags);
    if (t->tag_name != NULL)
        test_opt(t->file, t->tag_name, sesevent_tag(&ev, t->tag_name), t->tag_value);
    CHECK(sesevent_tag(&ev, "no-such-tag") == NULL, "%s: an absent tag found", t->file);
    CHECK(ev.nrecipients == t->nrecipients, "%s: %zu recipients, want %zu", t->file, ev.nrecipients,
          t->nrecipients);
    for (size_t i = 0; i < ev.nrecipients && i < t->nrecipients; i++) {
        test_opt(t->file, "emailAddress", ev.recipients[i].address, t->rcpt[i].address);
        test_opt(t->file, "action", ev.recipients[i].action, t->rcpt[i].action);
        test_opt(t->file, "status", ev.recipients[i].status, t->rcpt[i].status);
        test_opt(t->file, "diagnosticCode", ev.recipients[i].diagnostic_code,
                 t->rcpt[i].diagnostic);
    }
    test_opt(t->file, "timestamp", ev.timestamp, t->timestamp);
    CHECK(ev.bounce == t->bounce, "%s: bounce %d, want %d", t->file, ev.bounce, t->bounce);
    test_opt(t->file, "bounceType", ev.bounce_type, t->bounce_type);
    test_opt(t->file, "bounceSubType", ev.bounce_subtype, t->bounce_subtype);
    test_opt(t->file, "complaintFeedbackType", ev.feedback_type, t->feedback_type);
    test_opt(t->file, "complaintSubType", ev.complaint_subtype, NULL);
    test_opt(t->file, "arrivalDate", ev.arrival_date, t->arrival_date);
    CHECK(ev.has_processing_time == (t->processing_ms >= 0), "%s: processing time present %d",
          t->file, ev.has_processing_time);
    if (t->processing_ms >= 0)
        CHECK(ev.processing_time_ms == t->processing_ms, "%s: processing %lld ms, want %lld",
              t->file, (long long)ev.processing_time_ms, t->processing_ms);
    test_opt(t->file, "smtpResponse", ev.smtp_response, t->smtp_response);
    test_opt(t->file, "delayType", ev.delay_type, t->delay_type);
    test_opt(t->file, "expirationTime", ev.expiration_time, t->expiration_time);
    test_opt(t->file, "reason", ev.reason, t->reason);
    test_opt(t->file, "templateName", ev.template_name, t->template_name);
    test_opt(t->file, "errorMessage", ev.error_message, t->error_message);
    test_opt(t->file, "ipAddress", ev.ip_address, t->ip_address);
    test_opt(t->file, "userAgent", ev.user_agent, t->user_agent);
    test_opt(t->file, "link", ev.link, t->link);
    test_opt(t->file, "contactList", ev.contact_list, t->contact_list);
    test_opt(t->file, "subscription.source", ev.subscription_source, t->subscription_source);
    sesevent_cleanup(&ev);
    CHECK(ev.message_id == NULL && ev.nrecipients == 0, "%s: cleanup left fields", t->file);
}

/* Every table row parsed, and every .json file in the corpus has a row. */
static void test_corpus(void)
{
    for (size_t i = 0; i < TEST_NCASES; i++)
        test_corpus_case(&test_cases[i]);
    DIR *d = opendir(TEST_DIR);
    CHECK(d != NULL, "%s: cannot open", TEST_DIR);
    if (d == NULL)
        return;
    size_t files = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        if (l < 5 || strcmp(de->d_name + l - 5, ".json") != 0)
            continue;
        files++;
        bool found = false;
        for (size_t i = 0; i < TEST_NCASES; i++)
            found = found || strcmp(test_cases[i].file, de->d_name) == 0;
        CHECK(found, "%s has no row in the table", de->d_name);
    }
    closedir(d);
    CHECK(files == TEST_NCASES, "%zu corpus files, %zu rows", files, TEST_NCASES);
}

/* Every bounce type and subtype of the documentation's "Bounce types"
 * table, in the event-publishing Bounce example. */
static void test_bounce_subtypes(void)
{
    static const struct {
        const char *type, *subtype;
        enum sesevent_bounce_type want;
    } bt[] = {
        {"Undetermined", "Undetermined", SESEVENT_BOUNCE_UNDETERMINED},
        {"Permanent", "General", SESEVENT_BOUNCE_PERMANENT},
        {"Permanent", "NoEmail", SESEVENT_BOUNCE_PERMANENT},
        {"Permanent", "Suppressed", SESEVENT_BOUNCE_PERMANENT},
        {"Permanent", "OnAccountSuppressionList", SESEVENT_BOUNCE_PERMANENT},
        {"Transient", "General", SESEVENT_BOUNCE_TRANSIENT},
        {"Transient", "MailboxFull", SESEVENT_BOUNCE_TRANSIENT},
        {"Transient", "MessageTooLarge", SESEVENT_BOUNCE_TRANSIENT},
        {"Transient", "ContentRejected", SESEVENT_BOUNCE_TRANSIENT},
        {"Transient", "AttachmentRejected", SESEVENT_BOUNCE_TRANSIENT},
    };
    size_t n = 0;
    char *text = test_read_file(TEST_DIR "/event-bounce.json", &n);
    CHECK(text != NULL, "event-bounce.json unreadable");
    if (text == NULL)
        return;
    const char *from = "\"bounceType\":\"Permanent\",\n    \"bounceSubType\":\"General\"";
    char *at = strstr(text, from);
    CHECK(at != NULL, "event-bounce.json: bounce type not found");
    for (size_t i = 0; at != NULL && i < sizeof bt / sizeof bt[0]; i++) {
        struct buf b = BUF_INIT;
        buf_add(&b, text, (size_t)(at - text));
        buf_printf(&b, "\"bounceType\":\"%s\",\n    \"bounceSubType\":\"%s\"", bt[i].type,
                   bt[i].subtype);
        buf_printf(&b, "%s", at + strlen(from));
        struct sesevent ev;
        char err[256];
        int rc = sesevent_parse(b.data, b.len, &ev, err, sizeof err);
        CHECK(rc == 0, "%s/%s: %s", bt[i].type, bt[i].subtype, err);
        if (rc == 0) {
            CHECK(ev.bounce == bt[i].want, "%s/%s: bounce %d", bt[i].type, bt[i].subtype,
                  ev.bounce);
            CHECK_STR(ev.bounce_type, bt[i].type, "bounceType");
            CHECK_STR(ev.bounce_subtype, bt[i].subtype, "bounceSubType");
            CHECK(ev.nrecipients == 1 && strcmp(ev.recipients[0].address, TEST_RCPT) == 0,
                  "%s/%s: recipients", bt[i].type, bt[i].subtype);
        }
        sesevent_cleanup(&ev);
        buf_free(&b);
    }
    free(text);
}

/* A malformed event and the words its reason must contain. */
struct test_bad {
    const char *json;
    const char *reason;
};

#define M_OK                                                                                       \
    "\"mail\":{\"messageId\":\"m-1\",\"timestamp\":\"2020-01-01T00:00:00.000Z\","                  \
    "\"source\":\"s@example.com\",\"destination\":[\"a@example.com\",\"b@example.com\"]}"

static const struct test_bad test_bads[] = {
    {"", "not JSON"},
    {"[]", "not a JSON object"},
    {"{\"eventType\":\"Bounce\",\"eventType\":\"Send\"," M_OK "}", "not JSON"},
    {"{" M_OK "}", "neither eventType nor notificationType"},
    {"{\"eventType\":\"Send\",\"notificationType\":\"Send\"," M_OK "}", "both"},
    {"{\"eventType\":7," M_OK "}", "eventType is not a string"},
    {"{\"notificationType\":\"\"," M_OK "}", "notificationType is empty"},
    {"{\"eventType\":\"Send\"}", "mail is missing"},
    {"{\"eventType\":\"Send\",\"mail\":null}", "mail is missing"},
    {"{\"eventType\":\"Send\",\"mail\":[]}", "mail is not an object"},
    {"{\"eventType\":\"Whatever\"}", "mail is missing"},
    {"{\"eventType\":\"Send\",\"mail\":{\"timestamp\":\"2020-01-01T00:00:00Z\",\"source\":\"s\","
     "\"destination\":[\"a@x\"]}}",
     "mail.messageId is missing"},
    {"{\"eventType\":\"Send\",\"mail\":{\"messageId\":5,\"timestamp\":\"2020-01-01T00:00:00Z\","
     "\"source\":\"s\",\"destination\":[\"a@x\"]}}",
     "mail.messageId is not a string"},
    {"{\"eventType\":\"Send\",\"mail\":{\"messageId\":\"\",\"timestamp\":\"2020-01-01T00:00:00Z\","
     "\"source\":\"s\",\"destination\":[\"a@x\"]}}",
     "mail.messageId is empty"},
    {"{\"eventType\":\"Send\",\"mail\":{\"messageId\":\"m\",\"timestamp\":\"yesterday\","
     "\"source\":\"s\",\"destination\":[\"a@x\"]}}",
     "mail.timestamp is not an ISO 8601"},
    {"{\"eventType\":\"Send\",\"mail\":{\"messageId\":\"m\",\"timestamp\":\"2020-01-01T00:00:00+"
     "01\","
     "\"source\":\"s\",\"destination\":[\"a@x\"]}}",
     "mail.timestamp is not an ISO 8601"},
    {"{\"eventType\":\"Send\",\"mail\":{\"messageId\":\"m\",\"timestamp\":\"2020-01-01T00:00:00 "
     "Z\","
     "\"source\":\"s\",\"destination\":[\"a@x\"]}}",
     "mail.timestamp is not an ISO 8601"},
    {"{\"eventType\":\"Send\",\"mail\":{\"messageId\":\"m\",\"timestamp\":\"2020-01-01 00:00:00Z\","
     "\"source\":\"s\",\"destination\":[\"a@x\"]}}",
     "mail.timestamp is not an ISO 8601"},
    {"{\"eventType\":\"Send\",\"mail\":{\"messageId\":\"m\",\"timestamp\":\"2020-01-01T00:00:"
     "00Zx\","
     "\"source\":\"s\",\"destination\":[\"a@x\"]}}",
     "mail.timestamp is not an ISO 8601"},
    {"{\"eventType\":\"Send\",\"mail\":{\"messageId\":\"m\",\"timestamp\":\"2020-01-01T00:00:00+01:"
     "0\","
     "\"source\":\"s\",\"destination\":[\"a@x\"]}}",
     "mail.timestamp is not an ISO 8601"},
    {"{\"eventType\":\"Send\",\"mail\":{\"messageId\":\"m\",\"timestamp\":\"2020-01-01T00:00:00."
     "Z\","
     "\"source\":\"s\",\"destination\":[\"a@x\"]}}",
     "mail.timestamp is not an ISO 8601"},
    {"{\"eventType\":\"Send\",\"mail\":{\"messageId\":\"m\",\"timestamp\":\"2020-01-01T00:00:00Z\","
     "\"source\":\"s\",\"destination\":\"a@x\"}}",
     "mail.destination is not an array"},
    {"{\"eventType\":\"Send\",\"mail\":{\"messageId\":\"m\",\"timestamp\":\"2020-01-01T00:00:00Z\","
     "\"source\":\"s\",\"destination\":[]}}",
     "mail.destination is empty"},
    {"{\"eventType\":\"Send\",\"mail\":{\"messageId\":\"m\",\"timestamp\":\"2020-01-01T00:00:00Z\","
     "\"source\":\"s\",\"destination\":[\"a@x\",3]}}",
     "mail.destination[1] is not a string"},
    {"{\"eventType\":\"Send\",\"mail\":{\"messageId\":\"m\",\"timestamp\":\"2020-01-01T00:00:00Z\","
     "\"source\":\"s\",\"destination\":[\"\"]}}",
     "mail.destination[0] is empty"},
    {"{\"eventType\":\"Send\",\"mail\":{\"messageId\":\"m\",\"timestamp\":\"2020-01-01T00:00:00Z\","
     "\"source\":\"s\",\"destination\":[\"a@x\"],\"tags\":[]}}",
     "mail.tags is not an object"},
    {"{\"eventType\":\"Send\",\"mail\":{\"messageId\":\"m\",\"timestamp\":\"2020-01-01T00:00:00Z\","
     "\"source\":\"s\",\"destination\":[\"a@x\"],\"tags\":{\"k\":\"v\"}}}",
     "mail.tags[\"k\"]"},
    {"{\"eventType\":\"Send\",\"mail\":{\"messageId\":\"m\",\"timestamp\":\"2020-01-01T00:00:00Z\","
     "\"source\":\"s\",\"destination\":[\"a@x\"],\"tags\":{\"k\":[7]}}}",
     "mail.tags[\"k\"][0] is not a string"},
    {"{\"eventType\":\"Send\",\"mail\":{\"messageId\":\"m\",\"timestamp\":\"2020-01-01T00:00:00Z\","
     "\"source\":\"s\",\"destination\":[\"a@x\"],\"tags\":{\"k\":[]}}}",
     "mail.tags[\"k\"] is empty"},
    {"{\"eventType\":\"Bounce\"," M_OK "}", "bounce is missing for a Bounce event"},
    {"{\"eventType\":\"Bounce\",\"bounce\":\"x\"," M_OK "}", "bounce is not an object"},
    /* a per-recipient event that names no recipient is refused, never
     * applied to the message's destinations */
    {"{\"eventType\":\"Bounce\",\"bounce\":{\"bounceType\":\"Permanent\",\"bounceSubType\":"
     "\"General\",\"bouncedRecipients\":[],\"timestamp\":\"2020-01-01T00:00:01Z\"}," M_OK "}",
     "bounce.bouncedRecipients is empty"},
    {"{\"eventType\":\"Bounce\",\"bounce\":{\"bounceType\":\"Permanent\",\"bounceSubType\":"
     "\"General\",\"timestamp\":\"2020-01-01T00:00:01Z\"}," M_OK "}",
     "bounce.bouncedRecipients is missing"},
    {"{\"eventType\":\"Bounce\",\"bounce\":{\"bounceType\":\"Permanent\",\"bounceSubType\":"
     "\"General\",\"bouncedRecipients\":[{\"emailAddress\":\"\"}],\"timestamp\":"
     "\"2020-01-01T00:00:01Z\"}," M_OK "}",
     "bounce.bouncedRecipients[0].emailAddress is empty"},
    {"{\"eventType\":\"Bounce\",\"bounce\":{\"bounceType\":\"Permanent\",\"bounceSubType\":"
     "\"General\",\"bouncedRecipients\":[\"a@example.com\"],\"timestamp\":"
     "\"2020-01-01T00:00:01Z\"}," M_OK "}",
     "bounce.bouncedRecipients[0] is not an object"},
    {"{\"eventType\":\"Bounce\",\"bounce\":{\"bounceType\":1,\"bounceSubType\":"
     "\"General\",\"bouncedRecipients\":[{\"emailAddress\":\"a@x\"}],\"timestamp\":"
     "\"2020-01-01T00:00:01Z\"}," M_OK "}",
     "bounce.bounceType is not a string"},
    {"{\"eventType\":\"Bounce\",\"bounce\":{\"bounceType\":\"Permanent\",\"bounceSubType\":"
     "\"General\",\"bouncedRecipients\":[{\"emailAddress\":\"a@x\",\"diagnosticCode\":550}],"
     "\"timestamp\":\"2020-01-01T00:00:01Z\"}," M_OK "}",
     "bounce.bouncedRecipients[0].diagnosticCode is not a string"},
    {"{\"notificationType\":\"Complaint\",\"complaint\":{\"complainedRecipients\":{},"
     "\"timestamp\":\"2020-01-01T00:00:01Z\"}," M_OK "}",
     "complaint.complainedRecipients is not an array"},
    {"{\"notificationType\":\"Delivery\",\"delivery\":{\"recipients\":[],"
     "\"timestamp\":\"2020-01-01T00:00:01Z\"}," M_OK "}",
     "delivery.recipients is empty"},
    {"{\"notificationType\":\"Delivery\",\"delivery\":{\"recipients\":[\"a@x\"],"
     "\"timestamp\":\"2020-01-01T00:00:01Z\",\"processingTimeMillis\":\"5\"}," M_OK "}",
     "delivery.processingTimeMillis"},
    {"{\"notificationType\":\"Delivery\",\"delivery\":{\"recipients\":[\"a@x\"],"
     "\"timestamp\":\"2020-01-01T00:00:01Z\",\"processingTimeMillis\":-1}," M_OK "}",
     "delivery.processingTimeMillis"},
    {"{\"eventType\":\"DeliveryDelay\",\"deliveryDelay\":{\"delayType\":\"MailboxFull\","
     "\"delayedRecipients\":[{\"status\":\"4.2.2\"}],\"timestamp\":\"2020-01-01T00:00:01Z\"}," M_OK
     "}",
     "deliveryDelay.delayedRecipients[0].emailAddress is missing"},
    {"{\"eventType\":\"Reject\",\"reject\":{}," M_OK "}", "reject.reason is missing"},
    {"{\"eventType\":\"Click\",\"click\":{\"timestamp\":\"2020-01-01T00:00:01Z\"}," M_OK "}",
     "click.link is missing"},
    {"{\"eventType\":\"Open\",\"open\":{\"timestamp\":true}," M_OK "}",
     "open.timestamp is not a string"},
    {"{\"eventType\":\"Send\",\"send\":[]," M_OK "}", "send is not an object"},
    {"{\"eventType\":\"Rendering Failure\",\"failure\":{\"templateName\":[]}," M_OK "}",
     "failure.templateName is not a string"},
};

/* Malformed events are refused with their reason, and leave nothing. */
static void test_malformed(void)
{
    for (size_t i = 0; i < sizeof test_bads / sizeof test_bads[0]; i++) {
        const struct test_bad *t = &test_bads[i];
        struct sesevent ev;
        char err[256];
        int rc = sesevent_parse(t->json, strlen(t->json), &ev, err, sizeof err);
        CHECK(rc < 0, "case %zu accepted: %s", i, t->json);
        CHECK(strstr(err, t->reason) != NULL, "case %zu: reason \"%s\", want \"%s\"", i, err,
              t->reason);
        CHECK(ev.message_id == NULL && ev.recipients == NULL && ev.destination == NULL,
              "case %zu: a refused event kept fields", i);
        sesevent_cleanup(&ev);
    }
}

/* Oversized inputs and bounded counts. */
static void test_bounds(void)
{
    char err[256];
    struct sesevent ev;
    /* larger than an SNS message */
    size_t big = SESEVENT_MAX_INPUT + 1;
    char *s = malloc(big);
    memset(s, ' ', big);
    CHECK(sesevent_parse(s, big, &ev, err, sizeof err) < 0 && strstr(err, "larger than"),
          "oversized: %s", err);
    free(s);

    /* 51 destinations, 51 bounced recipients, a long string, 65 tags */
    struct buf b = BUF_INIT;
    buf_printf(&b, "{\"eventType\":\"Send\",\"mail\":{\"messageId\":\"m\",\"timestamp\":"
                   "\"2020-01-01T00:00:00Z\",\"source\":\"s\",\"destination\":[");
    for (int i = 0; i <= SESEVENT_MAX_RECIPIENTS; i++)
        buf_printf(&b, "%s\"r%d@example.com\"", i ? "," : "", i);
    buf_printf(&b, "]}}");
    CHECK(sesevent_parse(b.data, b.len, &ev, err, sizeof err) < 0 &&
              strstr(err, "mail.destination has more than 50"),
          "51 destinations: %s", err);
    buf_free(&b);

    buf_printf(&b, "{\"eventType\":\"Bounce\"," M_OK ",\"bounce\":{\"bounceType\":\"Transient\","
                   "\"bounceSubType\":\"MailboxFull\",\"timestamp\":\"2020-01-01T00:00:01Z\","
                   "\"bouncedRecipients\":[");
    for (int i = 0; i <= SESEVENT_MAX_RECIPIENTS; i++)
        buf_printf(&b, "%s{\"emailAddress\":\"r%d@example.com\"}", i ? "," : "", i);
    buf_printf(&b, "]}}");
    CHECK(sesevent_parse(b.data, b.len, &ev, err, sizeof err) < 0 &&
              strstr(err, "bouncedRecipients has more than 50"),
          "51 bounced: %s", err);
    buf_free(&b);

    buf_printf(&b, "{\"eventType\":\"Reject\"," M_OK ",\"reject\":{\"reason\":\"");
    for (int i = 0; i <= SESEVENT_MAX_STRING; i++)
        buf_add(&b, "x", 1);
    buf_printf(&b, "\"}}");
    CHECK(sesevent_parse(b.data, b.len, &ev, err, sizeof err) < 0 &&
              strstr(err, "reject.reason is longer than"),
          "long reason: %s", err);
    buf_free(&b);

    buf_printf(&b, "{\"eventType\":\"Send\",\"mail\":{\"messageId\":\"m\",\"timestamp\":"
                   "\"2020-01-01T00:00:00Z\",\"source\":\"s\",\"destination\":[\"a@x\"],"
                   "\"tags\":{");
    for (int i = 0; i <= SESEVENT_MAX_TAGS; i++)
        buf_printf(&b, "%s\"t%d\":[\"v\"]", i ? "," : "", i);
    buf_printf(&b, "}}}");
    CHECK(sesevent_parse(b.data, b.len, &ev, err, sizeof err) < 0 &&
              strstr(err, "mail.tags has more than"),
          "65 tags: %s", err);
    buf_free(&b);
}

/* Accepted edge cases: unknown kinds keep the message id; a bounce of a
 * type SES does not document; an identity notification of an event-only
 * type is unknown; Send without its object. */
static void test_accepted(void)
{
    char err[256];
    struct sesevent ev;
    const char *unknown = "{\"eventType\":\"Future Thing\",\"future\":{\"x\":1}," M_OK "}";
    CHECK(sesevent_parse(unknown, strlen(unknown), &ev, err, sizeof err) == 0, "unknown: %s", err);
    CHECK(ev.kind == SESEVENT_UNKNOWN && ev.scope == SESEVENT_SCOPE_NONE, "unknown kind %d",
          ev.kind);
    CHECK_STR(ev.type ? ev.type : "", "Future Thing", "unknown type");
    CHECK_STR(ev.message_id ? ev.message_id : "", "m-1", "unknown message id");
    CHECK(ev.nrecipients == 0 && ev.ndestination == 2, "unknown: %zu recipients", ev.nrecipients);
    CHECK_STR(sesevent_kind_name(ev.kind), "unknown", "unknown name");
    sesevent_cleanup(&ev);

    const char *ident_open = "{\"notificationType\":\"Open\",\"open\":{}," M_OK "}";
    CHECK(sesevent_parse(ident_open, strlen(ident_open), &ev, err, sizeof err) == 0,
          "identity Open: %s", err);
    CHECK(ev.kind == SESEVENT_UNKNOWN && ev.format == SESEVENT_IDENTITY, "identity Open kind %d",
          ev.kind);
    sesevent_cleanup(&ev);

    const char *odd = "{\"eventType\":\"Bounce\",\"bounce\":{\"bounceType\":\"Sideways\","
                      "\"bounceSubType\":\"General\",\"bouncedRecipients\":[{\"emailAddress\":"
                      "\"b@example.com\"}],\"timestamp\":\"2020-01-01T00:00:01Z\"}," M_OK "}";
    CHECK(sesevent_parse(odd, strlen(odd), &ev, err, sizeof err) == 0, "odd bounce: %s", err);
    CHECK(ev.bounce == SESEVENT_BOUNCE_OTHER, "odd bounce %d", ev.bounce);
    CHECK(ev.nrecipients == 1 && strcmp(ev.recipients[0].address, "b@example.com") == 0 &&
              ev.scope == SESEVENT_SCOPE_RECIPIENTS,
          "odd bounce applies to b@ only");
    sesevent_cleanup(&ev);

    static const struct {
        const char *type;
        enum sesevent_bounce_type want;
    } bt[] = {{"Transient", SESEVENT_BOUNCE_TRANSIENT},
              {"Undetermined", SESEVENT_BOUNCE_UNDETERMINED}};
    for (size_t i = 0; i < sizeof bt / sizeof bt[0]; i++) {
        struct buf b = BUF_INIT;
        buf_printf(&b,
                   "{\"eventType\":\"Bounce\",\"bounce\":{\"bounceType\":\"%s\","
                   "\"bounceSubType\":\"Suppressed\",\"bouncedRecipients\":[{\"emailAddress\":"
                   "\"a@example.com\"}],\"timestamp\":\"2020-01-01T00:00:01Z\"}," M_OK "}",
                   bt[i].type);
        CHECK(sesevent_parse(b.data, b.len, &ev, err, sizeof err) == 0, "%s: %s", bt[i].type, err);
        CHECK(ev.bounce == bt[i].want, "%s: bounce %d", bt[i].type, ev.bounce);
        sesevent_cleanup(&ev);
        buf_free(&b);
    }

    const char *send = "{\"eventType\":\"Send\"," M_OK "}";
    CHECK(sesevent_parse(send, strlen(send), &ev, err, sizeof err) == 0, "bare Send: %s", err);
    CHECK(ev.kind == SESEVENT_SEND && ev.scope == SESEVENT_SCOPE_DESTINATIONS, "bare Send %d",
          ev.kind);
    sesevent_cleanup(&ev);
}

/* sesevent_time_ms over the shapes SES's documentation shows. */
static void test_time_ms(void)
{
    static const struct {
        const char *in;
        int rc;
        int64_t want;
    } t[] = {
        {"1970-01-01T00:00:00Z", 0, 0},
        {"2016-01-27T14:59:38.237Z", 0, 1453906778237},
        {"2016-01-27T14:59:38.2Z", 0, 1453906778200},
        {"2016-01-27T14:59:38.237519Z", 0, 1453906778237},
        {"2018-10-08T14:05:45 +0000", 0, 1539007545000},
        {"2018-10-08T16:05:45+02:00", 0, 1539007545000},
        {"2018-10-08T09:05:45-0500", 0, 1539007545000},
        {"2016-13-27T14:59:38Z", -1, 0},
        {"2016-01-27T24:59:38Z", -1, 0},
        {"2016-01-27 14:59:38Z", -1, 0},
        {"2016-01-27T14:59:38", -1, 0},
        {"2016-01-27T14:59:38+25:00", -1, 0},
        {"", -1, 0},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        int64_t ms = -7;
        int rc = sesevent_time_ms(t[i].in, &ms);
        CHECK(rc == t[i].rc, "%s: rc %d", t[i].in, rc);
        if (rc == 0 && t[i].rc == 0)
            CHECK(ms == t[i].want, "%s: %lld, want %lld", t[i].in, (long long)ms,
                  (long long)t[i].want);
    }
    int64_t ms = 0;
    CHECK(sesevent_time_ms(NULL, &ms) == -1, "NULL time");
}

/* The state and the per-recipient detail each corpus file gives. */
static void test_state_detail(void)
{
    static const struct {
        const char *file, *state;
        size_t recipient;
        const char *detail;
    } t[] = {
        {"notification-bounce-dsn.json", "bounced", 0,
         "{\"action\":\"failed\",\"diagnostic\":\"smtp; 550 5.1.1 <jane@example.com>... User\","
         "\"status\":\"5.1.1\","
         "\"subtype\":\"General\",\"type\":\"Permanent\"}"},
        {"notification-complaint-feedback.json", "complained", 0, "{\"feedback_type\":\"abuse\"}"},
        {"notification-delivery.json", "delivered", 0,
         "{\"smtp_response\":\"250 ok:  Message 64111812 accepted\"}"},
        {"event-delivery-delay.json", "delayed", 0, NULL},
        {"event-reject.json", "rejected", 0, "{\"reason\":\"Bad content\"}"},
        {"event-send.json", "", 0, "{}"},
        {"event-open.json", "", 0, "{}"},
        {"event-click.json", "", 0, "{}"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", TEST_DIR, t[i].file);
        size_t n = 0;
        char *text = test_read_file(path, &n);
        CHECK(text != NULL, "%s unreadable", t[i].file);
        if (text == NULL)
            continue;
        struct sesevent ev;
        char err[256];
        int rc = sesevent_parse(text, n, &ev, err, sizeof err);
        CHECK(rc == 0, "%s: %s", t[i].file, err);
        if (rc == 0) {
            CHECK_STR(sesevent_state(&ev), t[i].state, t[i].file);
            struct buf d = BUF_INIT;
            sesevent_detail(&ev, t[i].recipient, &d);
            if (t[i].detail != NULL)
                CHECK_STR(buf_cstr(&d), t[i].detail, t[i].file);
            else
                CHECK(d.len > 2 && d.data[0] == '{', "%s: detail %s", t[i].file, buf_cstr(&d));
            buf_free(&d);
            sesevent_cleanup(&ev);
        }
        free(text);
    }
}

/* A diagnostic longer than SESEVENT_DETAIL_STRING is cut at a character. */
static void test_detail_cut(void)
{
    struct buf j = BUF_INIT;
    buf_adds(&j, "{\"notificationType\":\"Bounce\",\"mail\":{\"timestamp\":"
                 "\"2016-01-27T14:59:38.237Z\",\"messageId\":\"m1\",\"source\":\"a@b.c\","
                 "\"destination\":[\"r@b.c\"]},\"bounce\":{\"bounceType\":\"Permanent\","
                 "\"bounceSubType\":\"General\",\"timestamp\":\"2016-01-27T14:59:38.237Z\","
                 "\"feedbackId\":\"f\",\"bouncedRecipients\":[{\"emailAddress\":\"r@b.c\","
                 "\"diagnosticCode\":\"");
    for (int k = 0; k < 300; k++)
        buf_adds(&j, "\u00e9"); /* two bytes each in UTF-8 */
    buf_adds(&j, "\"}]}}");
    struct sesevent ev;
    char err[256];
    int rc = sesevent_parse(j.data, j.len, &ev, err, sizeof err);
    CHECK(rc == 0, "long diagnostic: %s", err);
    if (rc == 0) {
        struct buf d = BUF_INIT;
        sesevent_detail(&ev, 0, &d);
        json_error_t je;
        json_t *o = json_loadb(d.data, d.len, 0, &je);
        CHECK(o != NULL, "detail is JSON: %s", je.text);
        const char *diag = o ? json_string_value(json_object_get(o, "diagnostic")) : NULL;
        CHECK(diag != NULL && strlen(diag) == SESEVENT_DETAIL_STRING, "cut to %d bytes: %zu",
              SESEVENT_DETAIL_STRING, diag ? strlen(diag) : 0);
        json_decref(o);
        buf_free(&d);
        sesevent_cleanup(&ev);
    }
    buf_free(&j);
}

int main(void)
{
    test_time_ms();
    test_state_detail();
    test_detail_cut();
    test_corpus();
    test_bounce_subtypes();
    test_malformed();
    test_bounds();
    test_accepted();
    return check_done("test_sesevent");
}
