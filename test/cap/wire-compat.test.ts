// Proves that the project's own CAP schema (helpers/cap/cap.proto + codec.ts) is wire-compatible
// with the reference CAP schemas Cordum is built from. The reference .proto files are READ at test
// time from the shared directory (never copied into the project). Three layers of proof:
//   1. reflection: every field number, scalar type, label, map key type, oneof membership and enum
//      value of every bus message in the reference matches ours (names may differ: we compare by
//      field number), and the other way round, so a drift on either side fails;
//   2. round trips for a fully populated packet of every payload kind: ours → theirs and theirs → ours;
//   3. byte-for-byte equality of the encodings.
// Without the reference (a clone of the repository alone) the whole file is skipped with one line.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import protobuf from 'protobufjs';
import { afterAll, describe, expect, it } from 'vitest';
import { decodePacket, encodePacket, type BusPacket, type PayloadKind } from '../../helpers/cap/codec.js';
import { REPO_ROOT } from '../../helpers/catalog.js';
import { describeWithReference, sharedReference } from '../support/shared-reference.js';

const REF_PROTO_DIR = sharedReference('cap/proto').path;
const REF_BUSPACKET = sharedReference('cap/proto/cordum/agent/v1/buspacket.proto');
const OUR_PROTO = join(REPO_ROOT, 'helpers/cap/cap.proto');

function loadReference(): protobuf.Root {
  const root = new protobuf.Root();
  // Imports are written relative to the proto root ("cordum/agent/v1/job.proto"); google/protobuf/*
  // is left as is so protobufjs serves its bundled well-known types.
  root.resolvePath = (_origin, target) => (target.startsWith('google/protobuf/') ? target : join(REF_PROTO_DIR, target));
  root.loadSync('cordum/agent/v1/buspacket.proto', { keepCase: true });
  root.resolveAll();
  return root;
}

function loadOurs(path = OUR_PROTO): protobuf.Root {
  const root = new protobuf.Root();
  root.loadSync(path, { keepCase: true });
  root.resolveAll();
  return root;
}

// Loaded only when present: the suites below are collected (and skipped) without it.
const theirs = REF_BUSPACKET.present ? loadReference() : new protobuf.Root();
const ours = loadOurs();
const TheirPacket = REF_BUSPACKET.present ? theirs.lookupType('cordum.agent.v1.BusPacket') : new protobuf.Type('Absent');

// ---------------------------------------------------------------------------------------------
// 1. Reflection

/** Enums whose value NAMES matter too: Cordum prints them (DLQ status, protojson). */
const NAME_SENSITIVE_ENUMS = new Set(['JobStatus']);

function fieldShape(f: protobuf.Field) {
  return {
    kind: f.resolvedType instanceof protobuf.Type ? 'message' : f.resolvedType instanceof protobuf.Enum ? 'enum' : f.type,
    repeated: f.repeated,
    map: f.map,
    keyType: f instanceof protobuf.MapField ? f.keyType : undefined,
    packed: f.packed,
    inOneof: f.partOf !== null && f.partOf !== undefined,
  };
}

/** Compares two message types by field number, recursively; returns human-readable differences. */
function compareSchemas(refRoot: protobuf.Type, ourRoot: protobuf.Type): { diffs: string[]; visited: Map<string, string> } {
  const diffs: string[] = [];
  const visited = new Map<string, string>(); // their full name -> our full name
  const walk = (t: protobuf.Type, o: protobuf.Type, at: string) => {
    if (visited.has(t.fullName)) {
      if (visited.get(t.fullName) !== o.fullName) diffs.push(`${at}: ${t.fullName} maps to both ${visited.get(t.fullName)} and ${o.fullName}`);
      return;
    }
    visited.set(t.fullName, o.fullName);
    const tIds = t.fieldsArray.map((f) => f.id).sort((a, b) => a - b);
    const oIds = o.fieldsArray.map((f) => f.id).sort((a, b) => a - b);
    if (JSON.stringify(tIds) !== JSON.stringify(oIds)) diffs.push(`${at}: field numbers differ: reference [${tIds}] vs ours [${oIds}]`);
    const tOneofs = t.oneofsArray.map((x) => x.fieldsArray.map((f) => f.id).sort((a, b) => a - b)).sort();
    const oOneofs = o.oneofsArray.map((x) => x.fieldsArray.map((f) => f.id).sort((a, b) => a - b)).sort();
    if (JSON.stringify(tOneofs) !== JSON.stringify(oOneofs)) diffs.push(`${at}: oneof groups differ: ${JSON.stringify(tOneofs)} vs ${JSON.stringify(oOneofs)}`);
    for (const tf of t.fieldsArray) {
      const of = o.fieldsById[tf.id];
      if (!of) continue;
      const where = `${at}.${tf.name}(#${tf.id})`;
      const ts = fieldShape(tf);
      const os = fieldShape(of);
      if (JSON.stringify(ts) !== JSON.stringify(os)) diffs.push(`${where}: reference ${JSON.stringify(ts)} vs ours ${JSON.stringify(os)}`);
      if (tf.resolvedType instanceof protobuf.Type && of.resolvedType instanceof protobuf.Type) {
        walk(tf.resolvedType, of.resolvedType, `${where}→${tf.resolvedType.name}`);
      } else if (tf.resolvedType instanceof protobuf.Enum && of.resolvedType instanceof protobuf.Enum) {
        const te = tf.resolvedType;
        const oe = of.resolvedType;
        visited.set(te.fullName, oe.fullName);
        const tv = Object.values(te.values).sort((a, b) => a - b);
        const ov = Object.values(oe.values).sort((a, b) => a - b);
        if (JSON.stringify(tv) !== JSON.stringify(ov)) diffs.push(`${where}: enum ${te.name} values [${tv}] vs ours [${ov}]`);
        if (NAME_SENSITIVE_ENUMS.has(te.name) && JSON.stringify(te.values) !== JSON.stringify(oe.values)) {
          diffs.push(`${where}: enum ${te.name} names differ: ${JSON.stringify(te.values)} vs ${JSON.stringify(oe.values)}`);
        }
      }
    }
  };
  walk(refRoot, ourRoot, 'BusPacket');
  return { diffs, visited };
}

function allTypesAndEnums(ns: protobuf.NamespaceBase): string[] {
  const out: string[] = [];
  for (const n of ns.nestedArray) {
    if (n instanceof protobuf.Type || n instanceof protobuf.Enum) out.push(n.fullName);
    if (n instanceof protobuf.Namespace || n instanceof protobuf.Type) out.push(...allTypesAndEnums(n));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// 2 + 3. Round trips and bytes

const CREATED_MS = 1764240000123; // ms precision: the codec's created_at unit
const CREATED_TS = { seconds: 1764240000, nanos: 123000000 };
const SIGNATURE = new Uint8Array([0, 1, 2, 127, 128, 254, 255]);

/**
 * Fully populated payloads. `maps: 'multi'` uses several entries per map (compared by decode
 * equality: protobuf does not fix map entry order, and Go writes maps in random order unless
 * deterministic marshalling is on). `maps: 'single'` uses one entry per map so the encodings of
 * both schemas must be byte-identical.
 */
function payloads(maps: 'single' | 'multi'): Record<PayloadKind, NonNullable<BusPacket[PayloadKind]>> {
  const m = (o: Record<string, string>) => (maps === 'single' ? Object.fromEntries(Object.entries(o).slice(0, 1)) : o);
  return {
    job_request: {
      job_id: 'job-0001',
      topic: 'job.default',
      priority: 3,
      context_ptr: 'redis://ctx:job-0001',
      adapter_id: 'adapter-x',
      env: m({ tenant_id: 'default', locale: 'en-GB', dry_run: 'true' }),
      parent_job_id: 'job-0000',
      workflow_id: 'wf-1',
      step_index: 4,
      memory_id: 'mem:job-0001',
      context_hints: { max_input_tokens: 8000, allow_summarization: true, allow_retrieval: true, tags: ['logs', 'code'] },
      budget: { max_input_tokens: 5_000_000_000, max_output_tokens: 1024, max_total_tokens: 9_007_199_254_740_991, deadline_ms: 60_000 },
      tenant_id: 'default',
      principal_id: 'alice',
      labels: m({ zone: 'eu-1', 'cordum.bus_msg_id': 'approval:1', retry: 'true' }),
      meta: {
        tenant_id: 'default',
        actor_id: 'alice',
        actor_type: 2,
        idempotency_key: 'idem-1',
        capability: 'repo.write',
        risk_tags: ['prod', 'write'],
        requires: ['git', 'network-egress'],
        pack_id: 'hello-pack',
        labels: m({ team: 'platform', env: 'prod' }),
      },
    },
    job_result: {
      job_id: 'job-0001',
      status: 6,
      result_ptr: 'redis://res:job-0001',
      worker_id: 'rb-worker',
      execution_ms: 4_294_967_297,
      error_code: 'chaos_injected',
      error_message: 'boom',
      artifact_ptrs: ['redis://art:1', 'redis://art:2'],
    },
    heartbeat: {
      worker_id: 'rb-worker',
      region: 'eu-1',
      type: 'cpu',
      cpu_load: 12.5,
      gpu_utilization: 99.25,
      active_jobs: 3,
      capabilities: ['echo', 'sleep'],
      pool: 'default',
      max_parallel_jobs: 4,
      labels: m({ zone: 'a', disk: 'ssd' }),
    },
    alert: { level: 'CRITICAL', message: 'disk full', component: 'scheduler', code: 'disk_full' },
    job_progress: {
      job_id: 'job-0001',
      step_id: 'build',
      percent: 55,
      message: 'halfway',
      result_ptr: 'redis://res:partial',
      artifact_ptrs: ['redis://art:log'],
      status: 4,
    },
    job_cancel: { job_id: 'job-0001', reason: 'operator request', requested_by: 'alice' },
  };
}

function packetOf(kind: PayloadKind, maps: 'single' | 'multi'): BusPacket {
  return {
    trace_id: 'trace-1',
    sender_id: 'sender-1',
    created_at: CREATED_MS,
    protocol_version: 1,
    [kind]: payloads(maps)[kind],
    signature: SIGNATURE,
  };
}

/** The same packet as the reference schema's plain object (Timestamp message instead of ms). */
function asReferenceObject(p: BusPacket): Record<string, unknown> {
  return { ...p, created_at: CREATED_TS };
}

function encodeTheirs(obj: Record<string, unknown>): Uint8Array {
  return TheirPacket.encode(TheirPacket.fromObject(obj)).finish();
}

function decodeTheirs(bytes: Uint8Array): Record<string, unknown> {
  return TheirPacket.toObject(TheirPacket.decode(bytes), { longs: Number, enums: Number, bytes: Array, defaults: false, oneofs: false });
}

/** Bytes as plain arrays so Buffer vs Uint8Array does not matter to deep equality. */
function normalise<T>(v: T): T {
  // Buffer.toJSON runs before the replacer and yields {type:'Buffer', data:[...]}.
  const replacer = (_k: string, x: unknown) =>
    x instanceof Uint8Array ? Array.from(x) : x && typeof x === 'object' && (x as { type?: string }).type === 'Buffer' ? (x as { data: number[] }).data : x;
  return JSON.parse(JSON.stringify(v, replacer)) as T;
}

const KINDS: PayloadKind[] = ['job_request', 'job_result', 'heartbeat', 'alert', 'job_progress', 'job_cancel'];

// ---------------------------------------------------------------------------------------------
// The suites: 1. reflection, then 2 + 3. round trips and bytes.

describeWithReference(REF_BUSPACKET, 'CAP wire compatibility with the reference schemas', () => {
  describe('CAP schema reflection (by field number)', () => {
    let reflection: ReturnType<typeof compareSchemas> | undefined;
    const reflect = () => (reflection ??= compareSchemas(TheirPacket, ours.lookupType('runbooks.cap.BusPacket')));

    it('every field number, type, label and enum value matches the reference, both ways', () => {
      expect(reflect().diffs).toEqual([]);
    });

    it('covers every message and enum of the reference bus schema, each mapped to a distinct one of ours', () => {
      const { visited } = reflect();
      const refAll = allTypesAndEnums(theirs.lookup('cordum.agent.v1') as protobuf.Namespace).sort();
      // google.protobuf.Timestamp is reached too; it is the same well-known type on both sides.
      expect([...visited.keys()].filter((n) => n.startsWith('.cordum.')).sort()).toEqual(refAll);
      expect(new Set(visited.values()).size).toBe(visited.size);
      // Ours has nothing the reference lacks (besides the imported Timestamp, compared structurally above).
      const ourAll = allTypesAndEnums(ours.lookup('runbooks.cap') as protobuf.Namespace).sort();
      expect([...new Set(visited.values())].filter((n) => n.startsWith('.runbooks.')).sort()).toEqual(ourAll);
    });

    describe('detects drift', () => {
      const dir = mkdtempSync(join(tmpdir(), 'rb-wire-'));
      afterAll(() => rmSync(dir, { recursive: true, force: true }));
      const mutated = (from: string, to: string) => {
        const text = readFileSync(OUR_PROTO, 'utf8');
        expect(text).toContain(from);
        const p = join(dir, `m${Math.random().toString(16).slice(2)}.proto`);
        writeFileSync(p, text.replace(from, to));
        return compareSchemas(TheirPacket, loadOurs(p).lookupType('runbooks.cap.BusPacket')).diffs;
      };

      it('a changed scalar type', () => {
        expect(mutated('int64 execution_ms = 5;', 'int32 execution_ms = 5;').join('\n')).toMatch(/execution_ms\(#5\).*"int64".*"int32"/);
      });
      it('a renumbered field', () => {
        expect(mutated('string pool = 11;', 'string pool = 8;').join('\n')).toMatch(/field numbers differ/);
      });
      it('a field moved out of the oneof', () => {
        expect(mutated('bytes signature = 14;\n}', 'bytes signature = 14;\n  string extra = 17;\n}').join('\n')).toMatch(/field numbers differ/);
      });
      it('a renamed JobStatus value', () => {
        expect(mutated('JOB_STATUS_TIMEOUT = 9;', 'JOB_STATUS_TIMED_OUT = 9;').join('\n')).toMatch(/JobStatus names differ/);
      });
    });
  });

  describe.each(KINDS)('wire compatibility: %s', (kind) => {
    it('ours → reference: the reference decodes exactly what we encoded', () => {
      const packet = packetOf(kind, 'multi');
      const decoded = decodeTheirs(encodePacket(packet));
      expect(normalise(decoded)).toEqual(normalise(asReferenceObject(packet)));
    });

    it('reference → ours: our codec decodes exactly what the reference encoded', () => {
      const packet = packetOf(kind, 'multi');
      const decoded = decodePacket(encodeTheirs(asReferenceObject(packet)));
      expect(normalise(decoded)).toEqual(normalise(packet));
    });

    it('both schemas produce identical bytes (single-entry maps, so entry order cannot differ)', () => {
      const packet = packetOf(kind, 'single');
      const ourBytes = Buffer.from(encodePacket(packet));
      const theirBytes = Buffer.from(encodeTheirs(asReferenceObject(packet)));
      expect(ourBytes.toString('hex')).toBe(theirBytes.toString('hex'));
      // And the identical bytes decode to the same packet on both sides.
      expect(normalise(decodePacket(theirBytes))).toEqual(normalise(packet));
      expect(normalise(decodeTheirs(ourBytes))).toEqual(normalise(asReferenceObject(packet)));
    });
  });

  describe('wire compatibility: envelope edge cases', () => {
    it('a packet without a payload or signature still round-trips', () => {
      const p: BusPacket = { trace_id: 't', sender_id: 's', created_at: CREATED_MS, protocol_version: 1 };
      expect(Buffer.from(encodePacket(p)).toString('hex')).toBe(Buffer.from(encodeTheirs(asReferenceObject(p))).toString('hex'));
    });

    it('an explicitly set zero value is omitted, as Go proto.Marshal does', () => {
      // proto3 never writes a scalar at its default. protobufjs writes any field set explicitly
      // (status: 0), so our encoder drops defaults first: our bytes equal the bytes of a packet
      // where the field is absent, which is what Go's proto.Marshal produces.
      const p: BusPacket = { trace_id: 't', created_at: CREATED_MS, protocol_version: 1, job_result: { job_id: 'j', status: 0 } };
      const ourBytes = Buffer.from(encodePacket(p));
      const goLike = Buffer.from(encodeTheirs(asReferenceObject({ ...p, job_result: { job_id: 'j' } })));
      expect(ourBytes.toString('hex')).toBe(goLike.toString('hex'));
      const absent: BusPacket = { ...p, job_result: { job_id: 'j' } };
      for (const bytes of [ourBytes, Buffer.from(encodePacket(absent))]) {
        expect(decodeTheirs(bytes).job_result).toMatchObject({ job_id: 'j' });
        expect((decodeTheirs(bytes).job_result as { status?: number }).status ?? 0).toBe(0);
        expect(decodePacket(bytes).job_result?.status ?? 0).toBe(0);
      }
    });
  });
});
