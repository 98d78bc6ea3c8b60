// Run one SES v1 (Query API) command with @aws-sdk/client-ses.
// Spec (see common.mjs) adds: op (e.g. "SendEmail"), input (the command input;
// {"$b64": ...} for blobs such as RawMessage.Data).
import * as ses from '@aws-sdk/client-ses';
import { readSpec, revive, clientConfig, instrument, okResult, runAndPrint } from './common.mjs';

const spec = readSpec();
const Command = ses[spec.op + 'Command'];
if (!Command) throw new Error('no such SES command: ' + spec.op);
const client = new ses.SESClient(clientConfig(spec));
const sent = [];
instrument(client, spec, sent);
await runAndPrint(spec, sent, async () => okResult(await client.send(new Command(revive(spec.input || {})))));
