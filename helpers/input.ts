// Values from the command line and the environment that end up in a webhook message, a Jira call,
// summary.md or a file name are checked where they enter, at run start, against documented rules:
// a newline in a ticket id would forge lines in a Slack message and in the Markdown table a
// reviewer pastes into a change ticket. Errors are one line and never repeat the value itself.
import { UsageError } from './errors.js';

/** A change ticket id (CHG-1234, INC0012345, OPS-7): it becomes part of an archive's file name. */
export const TICKET_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
export const TICKET_RULE = "1-64 letters, digits, '.', '_' or '-', starting with a letter or digit (e.g. CHG-1234)";

/** Free text (runbook option values, RUNBOOK_OPERATOR, RUNBOOK_REPORT_URL) is one printable line. */
export const MAX_TEXT_CHARS = 1024;
// Control characters, line and paragraph separators, and bidirectional overrides (which make text
// display differently from what it says).
const UNSAFE_TEXT = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

/** The ticket id, or a one-line UsageError (exit 2) that says what is wrong without echoing it. */
export function checkTicket(value: string, where = '--ticket'): string {
  if (TICKET_PATTERN.test(value)) return value;
  throw new UsageError(`${where}: a change ticket id must be ${TICKET_RULE}; ${whatIsWrong(value, TICKET_PATTERN, 64)}`);
}

/** One printable line of at most MAX_TEXT_CHARS, or a one-line UsageError naming where it came from. */
export function checkText(value: string, where: string): string {
  if (value.length <= MAX_TEXT_CHARS && !UNSAFE_TEXT.test(value)) return value;
  throw new UsageError(`${where}: must be one line of printable text of at most ${MAX_TEXT_CHARS} characters; ${whatIsWrong(value, undefined, MAX_TEXT_CHARS)}`);
}

export interface RunInput {
  ticket?: string;
  /** The runbook's declared options as given. */
  options?: Record<string, string | boolean>;
  env?: NodeJS.ProcessEnv;
}

/** Everything a run takes from the user that reaches a report, a notification or a ticket. */
export function checkRunInput(input: RunInput): void {
  if (input.ticket !== undefined) checkTicket(input.ticket);
  for (const [name, value] of Object.entries(input.options ?? {})) {
    if (typeof value === 'string') checkText(value, `--${name}`);
  }
  const env = input.env ?? process.env;
  for (const name of ['RUNBOOK_OPERATOR', 'RUNBOOK_REPORT_URL']) {
    const value = env[name];
    if (value) checkText(value, name);
  }
}

/** What is wrong with a value, in words: its length or its first disallowed character and where. */
function whatIsWrong(value: string, pattern: RegExp | undefined, max: number): string {
  if (value.length === 0) return 'got an empty value';
  if (value.length > max) return `got ${value.length} characters`;
  const chars = [...value];
  const at = chars.findIndex((ch, i) => (pattern ? !pattern.test(i === 0 ? ch : `A${ch}`) : UNSAFE_TEXT.test(ch)));
  if (at < 0) return 'got a value that does not match';
  return `got ${describeChar(chars[at]!)} at character ${at + 1}`;
}

function describeChar(ch: string): string {
  const named: Record<string, string> = { '\n': 'a line break', '\r': 'a carriage return', '\t': 'a tab', ' ': 'a space' };
  if (named[ch]) return named[ch];
  const cp = ch.codePointAt(0)!;
  const code = `U+${cp.toString(16).toUpperCase().padStart(4, '0')}`;
  if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f)) return `a control character (${code})`;
  if (cp > 0x7e) return `the non-ASCII character ${code}`;
  return `'${ch}'`;
}
