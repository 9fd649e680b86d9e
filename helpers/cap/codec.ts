// Binary CAP codec: encodes and decodes BusPackets exactly as Cordum puts them on NATS.
// Field names stay snake_case (keepCase) so they read like Cordum's docs and Redis data.
import protobuf from 'protobufjs';
import { repoPath } from '../paths.js';

const PROTO_PATH = repoPath('helpers/cap/cap.proto');

export const JOB_STATUS = [
  'JOB_STATUS_UNSPECIFIED',
  'JOB_STATUS_PENDING',
  'JOB_STATUS_SCHEDULED',
  'JOB_STATUS_DISPATCHED',
  'JOB_STATUS_RUNNING',
  'JOB_STATUS_SUCCEEDED',
  'JOB_STATUS_FAILED',
  'JOB_STATUS_CANCELLED',
  'JOB_STATUS_DENIED',
  'JOB_STATUS_TIMEOUT',
] as const;
export type JobStatusName = (typeof JOB_STATUS)[number];
export const JobStatus = Object.fromEntries(JOB_STATUS.map((n, i) => [n.slice('JOB_STATUS_'.length), i])) as Record<
  'UNSPECIFIED' | 'PENDING' | 'SCHEDULED' | 'DISPATCHED' | 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'CANCELLED' | 'DENIED' | 'TIMEOUT',
  number
>;

export function jobStatusName(n: number | undefined | null): JobStatusName | string {
  const v = n ?? 0;
  return JOB_STATUS[v] ?? `JOB_STATUS_${v}`;
}

export interface JobMeta {
  tenant_id?: string;
  actor_id?: string;
  actor_type?: number; // 0 unspecified, 1 human, 2 service
  idempotency_key?: string;
  capability?: string;
  risk_tags?: string[];
  requires?: string[];
  pack_id?: string;
  labels?: Record<string, string>;
}

export interface JobRequest {
  job_id?: string;
  topic?: string;
  priority?: number; // 0 unspecified, 1 interactive, 2 batch, 3 critical
  context_ptr?: string;
  adapter_id?: string;
  env?: Record<string, string>;
  parent_job_id?: string;
  workflow_id?: string;
  step_index?: number;
  memory_id?: string;
  context_hints?: { max_input_tokens?: number; allow_summarization?: boolean; allow_retrieval?: boolean; tags?: string[] };
  budget?: { max_input_tokens?: number; max_output_tokens?: number; max_total_tokens?: number; deadline_ms?: number };
  tenant_id?: string;
  principal_id?: string;
  labels?: Record<string, string>;
  meta?: JobMeta;
}

export interface JobResult {
  job_id?: string;
  status?: number;
  result_ptr?: string;
  worker_id?: string;
  execution_ms?: number;
  error_code?: string;
  error_message?: string;
  artifact_ptrs?: string[];
}

export interface Heartbeat {
  worker_id?: string;
  region?: string;
  type?: string;
  cpu_load?: number;
  gpu_utilization?: number;
  active_jobs?: number;
  capabilities?: string[];
  pool?: string;
  max_parallel_jobs?: number;
  labels?: Record<string, string>;
}

export interface JobCancel {
  job_id?: string;
  reason?: string;
  requested_by?: string;
}

export interface JobProgress {
  job_id?: string;
  step_id?: string;
  percent?: number;
  message?: string;
  result_ptr?: string;
  artifact_ptrs?: string[];
  status?: number;
}

export interface SystemAlert {
  level?: string;
  message?: string;
  component?: string;
  code?: string;
}

export interface BusPacket {
  trace_id?: string;
  sender_id?: string;
  /** Milliseconds since epoch on decode; accepts Date or ms on encode. */
  created_at?: number | Date;
  protocol_version?: number;
  job_request?: JobRequest;
  job_result?: JobResult;
  heartbeat?: Heartbeat;
  alert?: SystemAlert;
  job_progress?: JobProgress;
  job_cancel?: JobCancel;
  signature?: Uint8Array;
}

export type PayloadKind = 'job_request' | 'job_result' | 'heartbeat' | 'alert' | 'job_progress' | 'job_cancel';

let busPacketType: protobuf.Type | undefined;
function packetType(): protobuf.Type {
  if (!busPacketType) {
    const root = new protobuf.Root();
    root.loadSync(PROTO_PATH, { keepCase: true });
    busPacketType = root.lookupType('runbooks.cap.BusPacket');
  }
  return busPacketType;
}

function toTimestamp(v: number | Date | undefined): { seconds: number; nanos: number } | undefined {
  if (v === undefined) return undefined;
  const ms = v instanceof Date ? v.getTime() : v;
  const seconds = Math.floor(ms / 1000);
  return { seconds, nanos: Math.round((ms - seconds * 1000) * 1e6) };
}

/**
 * proto3 never writes a scalar at its default value; protobufjs writes any field that was set
 * explicitly (e.g. `status: 0`). Drop defaults so our bytes match Go's proto.Marshal.
 */
function withoutDefaults(v: unknown): unknown {
  if (Array.isArray(v) || v instanceof Uint8Array) return v;
  if (v === null || typeof v !== 'object') return v;
  const out: Record<string, unknown> = {};
  for (const [k, val] of Object.entries(v as Record<string, unknown>)) {
    if (val === undefined || val === null || val === 0 || val === '' || val === false) continue;
    if (Array.isArray(val) && val.length === 0) continue;
    out[k] = withoutDefaults(val);
  }
  return out;
}

/** Encode a packet to the binary protobuf bytes Cordum expects (protocol_version defaults to 1). */
export function encodePacket(p: BusPacket): Uint8Array {
  const type = packetType();
  const obj = withoutDefaults({ ...p, created_at: toTimestamp(p.created_at ?? Date.now()) }) as Record<string, unknown>;
  if (obj.protocol_version === undefined) obj.protocol_version = 1;
  const msg = type.fromObject(obj);
  return type.encode(msg).finish();
}

/** Decode binary bytes into a plain packet; throws a readable error on garbage. */
export function decodePacket(bytes: Uint8Array): BusPacket {
  const type = packetType();
  let msg: protobuf.Message;
  try {
    msg = type.decode(bytes);
  } catch (err) {
    throw new Error(`not a CAP BusPacket: ${(err as Error).message}`);
  }
  const o = type.toObject(msg, { longs: Number, enums: Number, defaults: false, oneofs: false }) as Record<string, any>;
  if (o.created_at) {
    const seconds = Number(o.created_at.seconds ?? 0);
    const nanos = Number(o.created_at.nanos ?? 0);
    o.created_at = seconds * 1000 + Math.floor(nanos / 1e6);
  }
  return o as BusPacket;
}

export function payloadKind(p: BusPacket): PayloadKind | undefined {
  for (const k of ['job_request', 'job_result', 'heartbeat', 'alert', 'job_progress', 'job_cancel'] as const) {
    if (p[k]) return k;
  }
  return undefined;
}
