// Send one bulk message for the fan-out tests and report what came back,
// response headers included (X-Sesgate-Batch-Id).
//
// Spec (see common.mjs) adds:
//   client: "ses" (@aws-sdk/client-ses), "sesv2" (@aws-sdk/client-sesv2) or
//           "nodemailer" (nodemailer's SES transport over an SESv2Client)
//   op, input: the command and its input for "ses" / "sesv2" ({"$b64": ...}
//           for blobs such as RawMessage.Data or Content.Raw.Data)
//   mail:   the nodemailer message for "nodemailer" (attachments may carry
//           base64 content with encoding: "base64")
// The printed result adds "responses": one {statusCode, headers} per HTTP
// answer received (header names lower-cased), and for nodemailer the
// envelope and the raw message it built (raw_b64).
import nodemailer from 'nodemailer';
import * as ses from '@aws-sdk/client-ses';
import * as sesv2 from '@aws-sdk/client-sesv2';
import { readSpec, revive, clientConfig, instrument, okResult, runAndPrint } from './common.mjs';

// Record the status and headers of every HTTP answer the client receives.
function recordResponses(client, responses) {
  client.middlewareStack.add(
    (next) => async (args) => {
      const out = await next(args);
      const res = out && out.response;
      if (res && res.headers) {
        responses.push({
          statusCode: res.statusCode,
          headers: Object.fromEntries(Object.entries(res.headers).map(([k, v]) => [k.toLowerCase(), v])),
        });
      }
      return out;
    },
    { step: 'deserialize', name: 'sesgateFanoutResponses', priority: 'low' },
  );
}

const spec = readSpec();
const sent = [];
const responses = [];

if (spec.client === 'nodemailer') {
  const sesClient = new sesv2.SESv2Client(clientConfig(spec));
  instrument(sesClient, spec, sent);
  recordResponses(sesClient, responses);
  const transport = nodemailer.createTransport({ SES: { sesClient, SendEmailCommand: sesv2.SendEmailCommand } });
  await runAndPrint(spec, sent, async () => {
    const info = await transport.sendMail(spec.mail);
    return okResult({ MessageId: info.response }, {
      responses,
      messageIdHeader: info.messageId,
      envelope: info.envelope,
      raw_b64: Buffer.from(info.raw).toString('base64'),
    });
  });
} else {
  const mod = spec.client === 'sesv2' ? sesv2 : ses;
  const Client = spec.client === 'sesv2' ? sesv2.SESv2Client : ses.SESClient;
  const Command = mod[spec.op + 'Command'];
  if (!Command) throw new Error('no such ' + spec.client + ' command: ' + spec.op);
  const client = new Client(clientConfig(spec));
  instrument(client, spec, sent);
  recordResponses(client, responses);
  await runAndPrint(spec, sent, async () =>
    okResult(await client.send(new Command(revive(spec.input || {}))), { responses }));
}
