// Replay fidelity: every gateway exchange recorded from a real Cordum (fresh install, all six
// runbooks and the contract suite, ../shared/cordum/recorded/gateway-transcript.jsonl) is replayed
// against a fresh sandbox in the recorded order, and each answer is compared with the real one:
// status code, content type, JSON shape (keys and value types, recursively) and plain-text error
// bodies. The figure (matches / compared) and every mismatch are printed; docs/contract.md lists the
// mismatches that remain and why they cannot match.
//
// The sandbox runs with the recorded gateway's configuration (TENANT_ID=default, limiter 50 rps /
// burst 100). The recording's bus side (CAP workers of the runbooks, forged results) is not in the
// transcript; replay workers (test/support/replay-workers.ts) do to each job what the recording shows
// was done to it.
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { connectBus, type Bus } from '../../helpers/bus.js';
import { connectRedis } from '../../helpers/redis.js';
import { startSandbox, type Sandbox } from '../../sandbox/index.js';
import { describeWithReference, sharedReference } from '../support/shared-reference.js';
import { IdMap, loadTranscript, replay, type ReplayReport } from '../support/replay.js';
import { recordedOutcomes, replayWorkers, type ReplayWorkers } from '../support/replay-workers.js';

const transcript = sharedReference('cordum/recorded/gateway-transcript.jsonl');
/** The figure the sandbox must reach (issue 15). */
const MIN_FIDELITY = 0.98;
const RECORDED_LIMIT = { rps: 50, burst: 100 };

describeWithReference(transcript, 'replay of the recorded real-Cordum transcript', () => {
  let sandbox: Sandbox;
  let report: ReplayReport;
  let bus: Bus | undefined;
  let redis: Redis | undefined;
  let workers: ReplayWorkers | undefined;

  beforeAll(async () => {
    sandbox = await startSandbox({
      // The recording waited (polling /policy/snapshots) for the kernel to load a published bundle;
      // the replay shortens those waits, so the sandbox's kernel reloads faster to keep up.
      policyReloadMs: 200,
      env: { TENANT_ID: 'default', API_RATE_LIMIT_RPS: String(RECORDED_LIMIT.rps), API_RATE_LIMIT_BURST: String(RECORDED_LIMIT.burst) },
    });
    const exchanges = loadTranscript(transcript.path);
    bus = await connectBus(sandbox.profile, { name: 'replay-workers' });
    redis = await connectRedis(sandbox.profile);
    const ids = new IdMap();
    const progress = { next: 0 };
    workers = replayWorkers({ bus, redis, ids, outcomes: recordedOutcomes(exchanges), pool: 'default', progress });
    report = await replay(exchanges, { baseUrl: sandbox.profile.gateway.url, apiKey: sandbox.apiKey }, { rateLimit: RECORDED_LIMIT, ids, progress, beforeExchange: () => workers!.ensure() });
    const figure = `${report.matches}/${report.compared} = ${((100 * report.matches) / report.compared).toFixed(1)}%`;
    const skipped = Object.entries(report.skipped).map(([k, n]) => `${n} ${k}`).join(', ');
    const lines = [`replay fidelity: ${figure} (${report.settled} GETs matched when read again after a pause; not replayed: ${skipped})`];
    for (const m of report.mismatches) lines.push(`  #${m.seq} ${m.method} ${m.url}\n      ${m.problems.join('\n      ')}`);
    console.log(lines.join('\n'));
  }, 240_000);

  afterAll(async () => {
    await workers?.stop();
    await bus?.close();
    await redis?.quit();
    await sandbox?.stop();
  });

  it(`answers at least ${MIN_FIDELITY * 100}% of the recorded exchanges like the real gateway`, () => {
    expect(report.compared).toBeGreaterThan(900);
    expect(report.matches / report.compared, report.mismatches.map((m) => `#${m.seq} ${m.method} ${m.url}: ${m.problems.join('; ')}`).join('\n')).toBeGreaterThanOrEqual(MIN_FIDELITY);
  });
});
