/* sesans: what sesgate reads in an SES answer (MessageId, error code and
 * message), v1 XML or v2 JSON. */
#include "sesans.h"

#include <stdio.h>
#include <string.h>

#include <jansson.h>

/* The text between open and close in s (n bytes), into out (size outlen). */
static bool sesans_xml_text(const char *s, size_t n, const char *open, const char *close, char *out,
                            size_t outlen)
{
    const char *p = memmem(s, n, open, strlen(open));
    if (p == NULL)
        return false;
    p += strlen(open);
    const char *e = memmem(p, n - (size_t)(p - s), close, strlen(close));
    if (e == NULL)
        return false;
    size_t len = (size_t)(e - p);
    if (len >= outlen)
        len = outlen - 1;
    memcpy(out, p, len);
    out[len] = '\0';
    return true;
}

/* A string member of the JSON object in s, into out. */
static bool sesans_json_text(const char *s, size_t n, const char *key, char *out, size_t outlen)
{
    json_t *root = json_loadb(s, n, 0, NULL);
    bool ok = false;
    if (root) {
        json_t *v = json_object_get(root, key);
        if (v == NULL && strcmp(key, "message") == 0)
            v = json_object_get(root, "Message");
        if (json_is_string(v)) {
            snprintf(out, outlen, "%s", json_string_value(v));
            ok = true;
        }
        json_decref(root);
    }
    return ok;
}

/* Public: the MessageId of an SES send answer. */
bool sesans_message_id(int api, const char *body, size_t n, char *out, size_t outlen)
{
    if (api == 2)
        return sesans_json_text(body, n, "MessageId", out, outlen);
    return sesans_xml_text(body, n, "<MessageId>", "</MessageId>", out, outlen);
}

/* Public: the code and message of an SES error answer. */
void sesans_error(int api, const char *error_type, const char *body, size_t n, char *code,
                  size_t codelen, char *message, size_t msglen)
{
    const char *data = body ? body : "";
    code[0] = message[0] = '\0';
    if (api == 2) {
        snprintf(code, codelen, "%s", error_type ? error_type : "");
        if (code[0] == '\0')
            sesans_json_text(data, n, "__type", code, codelen);
        sesans_json_text(data, n, "message", message, msglen);
    } else {
        sesans_xml_text(data, n, "<Code>", "</Code>", code, codelen);
        sesans_xml_text(data, n, "<Message>", "</Message>", message, msglen);
    }
}
