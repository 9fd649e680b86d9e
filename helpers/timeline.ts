// A reusable matcher for ordered event timelines (workflow run timelines, job event lists...).
// The expected sequence may skip events (gaps are allowed), but the events it names must appear in
// that order. Timestamps must be valid and never go backwards, and each expected event can pin any
// of its fields. A mismatch comes back as one precise sentence: which expected event was not found,
// after which matched event, and what was there instead.

/** The fields the matcher reads; any event with `time` and `type` (plus optional fields) fits. */
export interface TimelineEventLike {
  time: string;
  type: string;
  [field: string]: unknown;
}

/** A field expectation: an exact value, a pattern for strings, or a predicate. */
export type FieldExpectation = string | number | boolean | null | RegExp | ((value: unknown) => boolean);

export interface ExpectedEvent {
  type: string;
  /** Other fields (step_id, status, message, job_id, ...) that must match on this event. */
  [field: string]: FieldExpectation | undefined;
}

export interface TimelineMatchOptions {
  /** Fields every event of the timeline must have (e.g. `{ run_id }`). Checked on all events. */
  every?: Record<string, FieldExpectation>;
  /**
   * 'non-decreasing' (default): equal timestamps are fine (two events written in the same instant).
   * 'strict': each timestamp must be later than the previous one.
   */
  order?: 'non-decreasing' | 'strict';
}

export interface MatchedEvent {
  expected: ExpectedEvent;
  /** Index of the matching event in the timeline. */
  index: number;
  event: TimelineEventLike;
}

export type TimelineMatch =
  | { ok: true; matches: MatchedEvent[] }
  | { ok: false; matches: MatchedEvent[]; mismatch: string };

export class TimelineMismatchError extends Error {
  constructor(
    readonly mismatch: string,
    readonly events: TimelineEventLike[],
  ) {
    super(mismatch);
    this.name = 'TimelineMismatchError';
  }
}

/**
 * Parse an RFC 3339 timestamp into a sortable bigint of nanoseconds since the epoch, keeping the
 * full fractional precision (Date would drop everything below a millisecond). Undefined if invalid.
 */
export function parseTimestampNs(time: unknown): bigint | undefined {
  if (typeof time !== 'string') return undefined;
  const m = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$/i.exec(time.trim());
  if (!m) return undefined;
  const ms = Date.parse(`${m[1]}${m[3]!.toUpperCase()}`);
  if (!Number.isFinite(ms)) return undefined;
  const frac = BigInt((m[2] ?? '').padEnd(9, '0') || '0');
  return BigInt(ms) * 1_000_000n + frac;
}

/** Check that `events` contains `expected` in order (gaps allowed), with valid, ordered timestamps. */
export function matchTimeline(events: readonly TimelineEventLike[], expected: readonly ExpectedEvent[], opts: TimelineMatchOptions = {}): TimelineMatch {
  const matches: MatchedEvent[] = [];
  const fail = (mismatch: string): TimelineMatch => ({ ok: false, matches, mismatch });

  // 1. Every event has a valid timestamp, and time never goes backwards.
  const strict = opts.order === 'strict';
  let prev: bigint | undefined;
  for (let i = 0; i < events.length; i++) {
    const ev = events[i]!;
    const t = parseTimestampNs(ev.time);
    if (t === undefined) return fail(`event ${describeAt(events, i)} has no valid RFC 3339 time (got ${JSON.stringify(ev.time)})`);
    if (prev !== undefined && (strict ? t <= prev : t < prev)) {
      return fail(
        `timestamps are not ${strict ? 'strictly increasing' : 'monotonic'}: event ${describeAt(events, i)} is ${strict && t === prev ? 'at the same time as' : 'earlier than'} the event before it, ${describeAt(events, i - 1)}`,
      );
    }
    prev = t;
  }

  // 2. Fields every event must carry.
  if (opts.every) {
    for (let i = 0; i < events.length; i++) {
      const bad = fieldMismatches(events[i]!, opts.every);
      if (bad.length) return fail(`event ${describeAt(events, i)} does not have the fields every event must have: ${bad.join('; ')}`);
    }
  }

  // 3. The expected events, in order, with gaps allowed.
  let from = 0;
  for (let e = 0; e < expected.length; e++) {
    const want = expected[e]!;
    let found = -1;
    for (let i = from; i < events.length; i++) {
      if (fieldMismatches(events[i]!, want).length === 0) {
        found = i;
        break;
      }
    }
    if (found >= 0) {
      matches.push({ expected: want, index: found, event: events[found]! });
      from = found + 1;
      continue;
    }
    const after = matches.length ? `after ${describeAt(events, matches.at(-1)!.index)}` : 'in the timeline';
    const parts = [`expected event ${e + 1} of ${expected.length}, ${describeExpected(want)}, ${after}, but it is not there`];
    const sameType = indexes(events, from, (ev) => ev.type === want.type);
    if (sameType.length) {
      const i = sameType[0]!;
      parts.push(`the nearest ${want.type} event, ${describeAt(events, i)}, differs: ${fieldMismatches(events[i]!, want).join('; ')}`);
    } else {
      const earlier = indexes(events, 0, (ev, i) => i < from && fieldMismatches(ev, want).length === 0);
      if (earlier.length) parts.push(`a matching event exists earlier, ${describeAt(events, earlier[0]!)}, so the order is wrong`);
      else parts.push(`no ${want.type} event at all`);
    }
    const rest = events.slice(from).map((_, k) => describeAt(events, from + k));
    parts.push(rest.length ? `events from there on: ${rest.join(', ')}` : 'no events follow it');
    return fail(parts.join('; '));
  }
  return { ok: true, matches };
}

/** Like matchTimeline, but throws TimelineMismatchError with the mismatch description. */
export function assertTimeline(events: readonly TimelineEventLike[], expected: readonly ExpectedEvent[], opts: TimelineMatchOptions = {}): MatchedEvent[] {
  const r = matchTimeline(events, expected, opts);
  if (!r.ok) throw new TimelineMismatchError(r.mismatch, [...events]);
  return r.matches;
}

/** The status of the last event of `type` (default `run_status`), or undefined if there is none. */
export function lastStatus(events: readonly TimelineEventLike[], type = 'run_status'): string | undefined {
  for (let i = events.length - 1; i >= 0; i--) {
    const ev = events[i]!;
    if (ev.type === type) return typeof ev.status === 'string' ? ev.status : undefined;
  }
  return undefined;
}

/** `[2] step_approved step_id=approve status=succeeded @2026-...`: how events are named in messages. */
export function describeEvent(ev: TimelineEventLike): string {
  const fields = ['step_id', 'status', 'job_id', 'message']
    .filter((k) => ev[k] !== undefined && ev[k] !== '')
    .map((k) => `${k}=${JSON.stringify(ev[k])}`);
  return [ev.type, ...fields].join(' ') + ` @${String(ev.time)}`;
}

function describeAt(events: readonly TimelineEventLike[], i: number): string {
  return `[${i}] ${describeEvent(events[i]!)}`;
}

function describeExpected(want: ExpectedEvent): string {
  const fields = Object.entries(want)
    .filter(([k, v]) => k !== 'type' && v !== undefined)
    .map(([k, v]) => `${k}=${describeExpectation(v!)}`);
  return fields.length ? `${want.type} with ${fields.join(', ')}` : want.type;
}

function describeExpectation(v: FieldExpectation): string {
  if (v instanceof RegExp) return String(v);
  if (typeof v === 'function') return v.name ? `<${v.name}>` : '<predicate>';
  return JSON.stringify(v);
}

/** Human-readable reasons why `ev` does not match `want` (empty = it matches). */
function fieldMismatches(ev: TimelineEventLike, want: Record<string, FieldExpectation | undefined>): string[] {
  const out: string[] = [];
  for (const [k, exp] of Object.entries(want)) {
    if (exp === undefined) continue;
    const got = ev[k];
    let ok: boolean;
    if (exp instanceof RegExp) ok = typeof got === 'string' && exp.test(got);
    else if (typeof exp === 'function') ok = exp(got);
    else ok = got === exp;
    if (!ok) out.push(`${k} is ${got === undefined ? 'missing' : JSON.stringify(got)}, expected ${describeExpectation(exp)}`);
  }
  return out;
}

function indexes(events: readonly TimelineEventLike[], from: number, pred: (ev: TimelineEventLike, i: number) => boolean): number[] {
  const out: number[] = [];
  for (let i = from; i < events.length; i++) if (pred(events[i]!, i)) out.push(i);
  return out;
}
