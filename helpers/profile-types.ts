// The shape of a resolved target profile. A profile file (targets/<name>.yaml) is validated and
// turned into this by helpers/target.ts; the sandbox builds one directly. Secrets are never
// stored here: only the NAME of the environment variable that holds them.

export interface TlsRef {
  /** PEM files on disk. */
  ca_file?: string;
  cert_file?: string;
  key_file?: string;
  /** Or a Kubernetes secret (tls.crt / tls.key / ca.crt) in the profile's namespace. */
  secret?: string;
  server_name?: string;
  insecure_skip_verify?: boolean;
}

/** How to reach a service inside a cluster when no direct URL is given. */
export interface PortForwardRef {
  service: string;
  port: number;
  namespace?: string;
}

export interface TargetProfile {
  name: string;
  /** Where the profile came from (file path, or "sandbox"). */
  source: string;
  description?: string;
  gateway: {
    url: string; // e.g. http://localhost:8081
    /** Env var holding the API key; absent = the target runs without keys. */
    api_key_env?: string;
    principal?: { id?: string; role?: string };
    connect_timeout_ms: number; // default 3000
    request_timeout_ms: number; // default 10000
    tls?: TlsRef;
    /** The gateway's TENANT_ID (OSS Cordum is single-tenant); default "default". */
    tenant?: string;
    /** The gateway's API_RATE_LIMIT_RPS / _BURST (one bucket per gateway process); default 50 / 100. */
    rate_limit?: { rps: number; burst?: number };
  };
  metrics?: {
    gateway?: string; // http://host:9092/metrics
    scheduler?: string; // http://host:9090/metrics
  };
  workflow_engine?: { health_url?: string }; // http://host:9093/health
  nats?: {
    url?: string;
    port_forward?: PortForwardRef;
    token_env?: string;
    user?: string;
    password_env?: string;
    creds_file?: string;
    tls?: TlsRef;
  };
  redis?: {
    url?: string; // redis://host:6379/0 (no password in the URL: use password_env)
    port_forward?: PortForwardRef;
    password_env?: string;
    username?: string;
    tls?: TlsRef;
    cluster?: boolean;
  };
  kube?: {
    context?: string;
    namespace: string;
    kubeconfig?: string;
  };
  /** Routing facts the runbooks need (from the target's pools.yaml). */
  routing: {
    pool: string; // default "default"
    mapped_topic: string; // default "job.default"
    unmapped_topic: string; // default "job.runbook.unmapped"
  };
  policy: {
    reload_interval_ms: number; // SAFETY_POLICY_RELOAD_INTERVAL, default 30000
    case_files: string[]; // extra policy regression case files
  };
  destructive: {
    allowed: boolean; // may drills change live state on this target?
  };
  /** Runbook policy-impact: how hard it may replay, and which decision flips fail a draft. */
  policy_impact?: {
    /** Share of gateway.rate_limit.rps the replay may use (0-1]; default 0.5, leaving the rest to real clients. */
    rate_share?: number;
    /** Flip kinds that fail the run whenever one occurs; default [deny_to_allow, require_human_to_allow]. */
    forbid?: string[];
    /** ALLOW→DENY fails the run above this share of the jobs let through today (0-1); default 0.1. */
    max_allow_to_deny_share?: number;
  };
  backup?: {
    dir?: string; // where archives go
    keep?: boolean; // keep archives after a passing drill
  };
  /** The readiness audit: static manifests to audit instead of the live target, and waivers. */
  readiness?: {
    manifests?: string; // folder, kustomize overlay, Helm chart, or '-' for stdin
    waivers?: string; // readiness.waivers.yaml
  };
  /** Free-form labels shown in reports. */
  labels?: Record<string, string>;
}
