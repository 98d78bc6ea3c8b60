// Send one message with nodemailer's SES transport (SESv2 SendEmail, Raw).
// Spec (see common.mjs) adds: mail (nodemailer message: from, to, cc, bcc,
// subject, text, html, headers, ses), or verify: true to run verify().
import nodemailer from 'nodemailer';
import { SESv2Client, SendEmailCommand } from '@aws-sdk/client-sesv2';
import { readSpec, clientConfig, instrument, okResult, runAndPrint } from './common.mjs';

const spec = readSpec();
const sesClient = new SESv2Client(clientConfig(spec));
const sent = [];
instrument(sesClient, spec, sent);
const transport = nodemailer.createTransport({ SES: { sesClient, SendEmailCommand } });
await runAndPrint(spec, sent, async () => {
  if (spec.verify) {
    return okResult({ verified: await transport.verify() });
  }
  const info = await transport.sendMail(spec.mail);
  return okResult({ MessageId: info.response }, {
    messageIdHeader: info.messageId,
    envelope: info.envelope,
    raw_b64: Buffer.from(info.raw).toString('base64'),
  });
});
