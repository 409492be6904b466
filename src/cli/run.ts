/**
 * The CLI's commands: `tollgate keys create|list|show|update|revoke|rotate|usage` against the admin
 * API. `tollgate.ts` is the process entry; this takes its arguments, environment and output as
 * parameters, so tests can run it in process too.
 */
import { parseArgs } from 'node:util';
import { AdminClient, AdminError } from './client.js';
import { policyFromFlags, POLICY_OPTIONS } from './flags.js';
import { printKey, printKeyList, printUsage } from './print.js';

const USAGE = `Usage: tollgate keys <command> [options]

Commands:
  list                       every key (config file and admin API)
  show <id>                  one key's policy and state
  create <id> --tier <tier>  a new key; prints its secret once
  update <id> [policy]       change only the fields given; the rest of the policy stays
                             (--budget-daily none removes that budget, --rpm default returns
                             to the tier's figure, --clear <field> removes a whole field)
  revoke <id>                refuse the key everywhere (its record and usage stay)
  rotate <id>                a new secret; the old one is refused at once
  usage <id> [--model m]     requests, tokens and cost today, this month, in total; budgets; rate limits

Policy options (create, update):
  --tier free|tier-1…tier-5   --rpm N --rpd N --tpm N --batch-queue-tokens N ('none': no limit,
                             'default': the tier's figure)
  --models a,b               allowed models      --budget-daily|--budget-monthly|--budget-total USD
  --tokens-daily N --tokens-monthly N ('none' removes one)   --expires-at 2026-12-31T00:00:00Z
  --disabled / --enabled     --team T --owner O --description D   --max-wait-ms N
  --share-weight N --share-group G ('none' leaves the group) --priority N   fair share of ceilings
  --policy '<json>'          any policy fields as JSON (e.g. per-model limits), merged under the flags;
                             on update, {"limits":{"models":{"gpt-4o":null}}} removes one model's limits

Options: --json (print the API's JSON)  --url <base> (else TOLLGATE_URL, default http://127.0.0.1:8080)
Environment: TOLLGATE_ADMIN_TOKEN (required), TOLLGATE_URL`;

/** What the CLI reads and writes: the process's, or a test's. */
export interface CliIo {
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
}

/** A usage mistake (exit 2) or a failed call (exit 1), with its message. */
class CliExit extends Error {
  constructor(
    message: string,
    readonly code: number,
  ) {
    super(message);
  }
}

function fail(message: string, code: number): never {
  throw new CliExit(message, code);
}

/** Run one command line; resolves with the exit code. */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  try {
    await command(argv, io);
    return 0;
  } catch (err) {
    if (err instanceof CliExit) {
      io.stderr(`tollgate: ${err.message}\n`);
      return err.code;
    }
    if (err instanceof AdminError) {
      io.stderr(`tollgate: ${err.status}: ${err.message}\n`);
      return 1;
    }
    if (err instanceof TypeError && 'code' in err && typeof err.code === 'string' && err.code.startsWith('ERR_PARSE_ARGS')) {
      io.stderr(`tollgate: ${err.message}\n\n${USAGE}\n`);
      return 2;
    }
    io.stderr(`tollgate: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
}

async function command(argv: readonly string[], io: CliIo): Promise<void> {
  const { values, positionals } = parseArgs({
    args: [...argv],
    allowPositionals: true,
    options: { ...POLICY_OPTIONS, json: { type: 'boolean' }, url: { type: 'string' }, help: { type: 'boolean', short: 'h' }, model: { type: 'string', multiple: true } },
  });
  const [group, command, id] = positionals;
  if (values.help || group === undefined) {
    io.stdout(`${USAGE}\n`);
    return;
  }
  if (group !== 'keys' || command === undefined) fail(`unknown command '${positionals.join(' ')}'\n\n${USAGE}`, 2);
  const token = io.env.TOLLGATE_ADMIN_TOKEN;
  if (!token) fail('TOLLGATE_ADMIN_TOKEN is not set', 2);
  const client = new AdminClient(values.url ?? io.env.TOLLGATE_URL ?? 'http://127.0.0.1:8080', token);
  const needId = (): string => id ?? fail(`'keys ${command}' needs a key id`, 2);
  const out = (json: unknown, print: () => string): void => {
    io.stdout(values.json ? `${JSON.stringify(json, null, 2)}\n` : print());
  };

  switch (command) {
    case 'list': {
      const list = await client.list();
      return out(list, () => printKeyList(list.data));
    }
    case 'show': {
      const key = await client.get(needId());
      return out(key, () => printKey(key));
    }
    case 'create': {
      const key = await client.create({ id: needId(), ...policyFromFlags(values, false) });
      return out(key, () => printKey(key));
    }
    case 'update': {
      const key = await client.update(needId(), policyFromFlags(values, true));
      return out(key, () => printKey(key));
    }
    case 'revoke': {
      const key = await client.revoke(needId());
      return out(key, () => printKey(key));
    }
    case 'rotate': {
      const key = await client.rotate(needId());
      return out(key, () => printKey(key));
    }
    case 'usage': {
      const usage = await client.usage(needId(), values.model ?? []);
      return out(usage, () => printUsage(usage));
    }
    default:
      fail(`unknown command 'keys ${command}'\n\n${USAGE}`, 2);
  }
}
