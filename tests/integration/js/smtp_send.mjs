// Send one message with nodemailer's SMTP transport, configured as
// nodemailer documents it for SES SMTP: host, port, secure (true: TLS from
// the first byte, like port 465; false: STARTTLS, required with
// requireTLS), auth { user, pass }, the CA to trust in tls.ca.
//
// Spec: host, port, secure, ca (PEM file path), servername, user, pass,
// mail (a nodemailer message: from, to, cc, bcc, subject, text, html,
// headers, messageId, date, attachments).
//
// The message is composed with nodemailer's own MailComposer and sent
// with its envelope (from, and every To, Cc and Bcc address), exactly as
// sendMail does, so that the test knows the bytes that went out.
// Prints {"ok": true, "response": "250 ...", "envelope": ..., "accepted":
// [...], "rejected": [...], "raw_b64": ...} or {"ok": false, "code",
// "responseCode", "response", "message"}; exits 0 either way.
import fs from 'node:fs';
import nodemailer from 'nodemailer';
import MailComposer from 'nodemailer/lib/mail-composer/index.js';
import { readSpec } from './common.mjs';

const spec = readSpec();
const transport = nodemailer.createTransport({
  host: spec.host || '127.0.0.1',
  port: spec.port,
  secure: !!spec.secure,
  requireTLS: !spec.secure,
  auth: { user: spec.user, pass: spec.pass },
  tls: { ca: [fs.readFileSync(spec.ca)], servername: spec.servername || 'localhost' },
  connectionTimeout: 20000,
  greetingTimeout: 20000,
  socketTimeout: 30000,
});

try {
  const compiled = new MailComposer(spec.mail).compile();
  compiled.keepBcc = false;
  const envelope = compiled.getEnvelope();
  const raw = await compiled.build();
  const info = await transport.sendMail({ envelope, raw });
  console.log(JSON.stringify({
    ok: true,
    response: info.response,
    envelope: info.envelope,
    accepted: info.accepted,
    rejected: info.rejected,
    raw_b64: Buffer.from(raw).toString('base64'),
  }));
} catch (e) {
  console.log(JSON.stringify({
    ok: false,
    code: e.code || null,
    responseCode: e.responseCode || null,
    response: e.response || null,
    message: String(e.message || e),
  }));
} finally {
  transport.close();
}
