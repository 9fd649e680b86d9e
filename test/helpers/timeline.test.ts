// helpers/timeline.ts on its own: ordered matching with gaps, timestamps, per-event fields, and
// mismatch messages precise enough to act on.
import { describe, expect, it } from 'vitest';
import { assertTimeline, lastStatus, matchTimeline, parseTimestampNs, TimelineMismatchError, type ExpectedEvent, type TimelineEventLike } from '../../helpers/timeline.js';

const RUN = 'run-1';
const ev = (time: string, type: string, extra: Record<string, unknown> = {}): TimelineEventLike => ({ time, type, run_id: RUN, ...extra });

const approved: TimelineEventLike[] = [
  ev('2026-11-27T10:00:00.000000100Z', 'step_waiting', { step_id: 'approve', status: 'waiting', message: 'approval requested' }),
  ev('2026-11-27T10:00:00.000000200Z', 'run_status', { status: 'waiting' }),
  ev('2026-11-27T10:00:01.5Z', 'step_approved', { step_id: 'approve', status: 'succeeded' }),
  ev('2026-11-27T10:00:01.500000001Z', 'run_status', { status: 'succeeded' }),
];

const EXPECTED: ExpectedEvent[] = [
  { type: 'step_waiting', step_id: 'approve', status: 'waiting' },
  { type: 'run_status', status: 'waiting' },
  { type: 'step_approved', step_id: 'approve', status: 'succeeded' },
  { type: 'run_status', status: 'succeeded' },
];

function mismatch(events: TimelineEventLike[], expected: ExpectedEvent[] = EXPECTED, opts = {}): string {
  const r = matchTimeline(events, expected, opts);
  if (r.ok) throw new Error('expected a mismatch');
  return r.mismatch;
}

describe('matchTimeline', () => {
  it('matches the documented approval timeline and reports where each expected event is', () => {
    const r = matchTimeline(approved, EXPECTED, { every: { run_id: RUN } });
    expect(r.ok).toBe(true);
    expect(r.matches.map((m) => m.index)).toEqual([0, 1, 2, 3]);
  });

  it('allows gaps: unexpected events between the expected ones are fine', () => {
    const withNoise = [approved[0]!, ev('2026-11-27T10:00:00.0000002Z', 'step_event_emitted'), approved[1]!, approved[2]!, ev('2026-11-27T10:00:01.5Z', 'step_dispatched', { step_id: 'next' }), approved[3]!];
    const r = matchTimeline(withNoise, EXPECTED);
    expect(r.ok).toBe(true);
    expect(r.matches.map((m) => m.index)).toEqual([0, 2, 3, 5]);
  });

  it('names the missing event, the last match and what follows when an event is absent', () => {
    const msg = mismatch([approved[0]!, approved[1]!, approved[3]!]);
    expect(msg).toContain('expected event 3 of 4, step_approved with step_id="approve", status="succeeded"');
    expect(msg).toContain('after [1] run_status status="waiting"');
    expect(msg).toContain('no step_approved event at all');
    expect(msg).toContain('[2] run_status status="succeeded"');
  });

  it('says which field differs when an event of the right type has the wrong values', () => {
    const rejected = [approved[0]!, approved[1]!, ev('2026-11-27T10:00:02Z', 'step_approved', { step_id: 'approve', status: 'failed' }), approved[3]!];
    const msg = mismatch(rejected.map((e, i) => (i === 3 ? { ...e, time: '2026-11-27T10:00:03Z' } : e)));
    expect(msg).toContain('the nearest step_approved event, [2] step_approved step_id="approve" status="failed"');
    expect(msg).toContain('status is "failed", expected "succeeded"');
  });

  it('reports an out-of-order event as such', () => {
    const events = [
      ev('2026-11-27T10:00:00Z', 'step_approved', { step_id: 'approve', status: 'succeeded' }),
      ev('2026-11-27T10:00:01Z', 'step_waiting', { step_id: 'approve', status: 'waiting' }),
      ev('2026-11-27T10:00:02Z', 'run_status', { status: 'succeeded' }),
    ];
    const msg = mismatch(events, [EXPECTED[0]!, EXPECTED[2]!]);
    expect(msg).toContain('a matching event exists earlier, [0] step_approved');
    expect(msg).toContain('the order is wrong');
  });

  it('rejects timestamps that go backwards, with nanosecond precision', () => {
    const events = [approved[0]!, { ...approved[1]!, time: '2026-11-27T10:00:00.000000099Z' }, approved[2]!, approved[3]!];
    const msg = mismatch(events);
    expect(msg).toMatch(/timestamps are not monotonic: event \[1\] run_status .* is earlier than the event before it, \[0\] step_waiting/);
  });

  it('accepts equal timestamps by default and rejects them in strict mode', () => {
    const same = approved.map((e) => ({ ...e, time: '2026-11-27T10:00:00Z' }));
    expect(matchTimeline(same, EXPECTED).ok).toBe(true);
    expect(mismatch(same, EXPECTED, { order: 'strict' })).toContain('is at the same time as the event before it');
  });

  it('rejects events without a valid RFC 3339 time', () => {
    expect(mismatch([approved[0]!, { ...approved[1]!, time: 'yesterday' }])).toContain('event [1] run_status status="waiting" @yesterday has no valid RFC 3339 time');
    expect(mismatch([{ ...approved[0]!, time: undefined as unknown as string }])).toContain('has no valid RFC 3339 time (got undefined)');
  });

  it('checks fields every event must carry', () => {
    const events = [...approved.slice(0, 3), { ...approved[3]!, run_id: 'another-run' }];
    expect(mismatch(events, EXPECTED, { every: { run_id: RUN } })).toContain('event [3] run_status status="succeeded"');
    expect(mismatch(events, EXPECTED, { every: { run_id: RUN } })).toContain('run_id is "another-run", expected "run-1"');
  });

  it('supports patterns and predicates as field expectations', () => {
    expect(matchTimeline(approved, [{ type: 'step_waiting', message: /approval/ }, { type: 'run_status', status: (v) => v === 'succeeded' }]).ok).toBe(true);
    expect(mismatch(approved, [{ type: 'step_waiting', message: /rejected/ }])).toContain('message is "approval requested", expected /rejected/');
  });

  it('matches an empty expectation against any timeline and fails an empty timeline clearly', () => {
    expect(matchTimeline([], []).ok).toBe(true);
    expect(mismatch([], [EXPECTED[0]!])).toContain('in the timeline, but it is not there; no step_waiting event at all; no events follow it');
  });
});

describe('assertTimeline, lastStatus, parseTimestampNs', () => {
  it('assertTimeline throws TimelineMismatchError carrying the events', () => {
    try {
      assertTimeline(approved.slice(0, 2), EXPECTED);
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(TimelineMismatchError);
      expect((err as TimelineMismatchError).events).toHaveLength(2);
      expect((err as Error).message).toContain('expected event 3 of 4');
    }
    expect(assertTimeline(approved, EXPECTED)).toHaveLength(4);
  });

  it('lastStatus gives the status of the last run_status event', () => {
    expect(lastStatus(approved)).toBe('succeeded');
    expect(lastStatus(approved.slice(0, 3))).toBe('waiting');
    expect(lastStatus(approved.slice(0, 1))).toBeUndefined();
    expect(lastStatus(approved, 'step_waiting')).toBe('waiting');
  });

  it('parseTimestampNs keeps sub-millisecond order and handles offsets', () => {
    expect(parseTimestampNs('2026-11-27T10:00:00.000000001Z')! > parseTimestampNs('2026-11-27T10:00:00Z')!).toBe(true);
    expect(parseTimestampNs('2026-11-27T11:00:00+01:00')).toBe(parseTimestampNs('2026-11-27T10:00:00Z'));
    expect(parseTimestampNs('2026-11-27 10:00:00')).toBeUndefined();
    expect(parseTimestampNs(42)).toBeUndefined();
  });
});
