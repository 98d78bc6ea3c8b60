// Run one SES v2 (REST-JSON API) command with @aws-sdk/client-sesv2.
// Spec (see common.mjs) adds: op (e.g. "SendEmail"), input (the command input;
// {"$b64": ...} for blobs such as Content.Raw.Data).
import * as sesv2 from '@aws-sdk/client-sesv2';
import { readSpec, revive, clientConfig, instrument, okResult, runAndPrint } from './common.mjs';

const spec = readSpec();
const Command = sesv2[spec.op + 'Command'];
if (!Command) throw new Error('no such SESv2 command: ' + spec.op);
const client = new sesv2.SESv2Client(clientConfig(spec));
const sent = [];
instrument(client, spec, sent);
await runAndPrint(spec, sent, async () => okResult(await client.send(new Command(revive(spec.input || {})))));
