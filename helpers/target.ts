// Loads a target profile file (targets/<name>.yaml or any path), validates it against
// helpers/schemas/target-profile.schema.json and resolves it into a TargetProfile with defaults.
// Every problem becomes a one-line ConfigError naming the file, the field and what was expected,
// because an on-call engineer reads these at 3 am and must fix the file without reading code.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, dirname, extname, isAbsolute, join, relative, resolve } from 'node:path';
import { createRequire } from 'node:module';
import type { Ajv as AjvInstance, ErrorObject, ValidateFunction } from 'ajv';
import { LineCounter, parseDocument } from 'yaml';
import { ConfigError } from './errors.js';
import { checkUserPath, readUserFile, type PathKind } from './files.js';
import { MIN_SECRET_LENGTH, registerSecret } from './redact.js';
import type { TargetProfile, TlsRef } from './profile-types.js';
import { REPO_ROOT, repoPath } from './paths.js';

export { REPO_ROOT };
export const TARGETS_DIR = join(REPO_ROOT, 'targets');
const SCHEMA_PATH = repoPath('helpers/schemas/target-profile.schema.json');

/** Profiles are small; anything bigger is a mistake (or an attack on the YAML parser). */
export const MAX_PROFILE_BYTES = 1024 * 1024;

export const PROFILE_DEFAULTS = {
  connect_timeout_ms: 3000,
  request_timeout_ms: 10000,
  routing: { pool: 'default', mapped_topic: 'job.default', unmapped_topic: 'job.runbook.unmapped' },
  policy: { reload_interval_ms: 30000 },
  destructive: { allowed: false },
} as const;

export interface LoadProfileOptions {
  /** Base for relative paths given on the command line (default process.cwd()). */
  cwd?: string;
  /** Used for ${VAR} / ${VAR:-default} interpolation and ~ expansion (default process.env). */
  env?: NodeJS.ProcessEnv;
}

/** Names of the profiles shipped in targets/ (for usage messages). */
export function availableTargets(): string[] {
  if (!existsSync(TARGETS_DIR)) return [];
  return readdirSync(TARGETS_DIR)
    .filter((f) => f.endsWith('.yaml'))
    .map((f) => f.slice(0, -'.yaml'.length))
    .sort();
}

export function loadProfile(nameOrPath: string, opts: LoadProfileOptions = {}): TargetProfile {
  const cwd = opts.cwd ?? process.cwd();
  const env = opts.env ?? process.env;
  const { abs, display } = locate(nameOrPath, cwd);
  const raw = readProfileText(abs, display);
  const data = parseYaml(raw, display);
  const expanded = interpolate(data, env, display, []) as Record<string, unknown>;
  // Registered before validation: an error message quoting an interpolated value stays redacted.
  const secrets = referencedSecrets(expanded, env);
  for (const s of secrets) registerSecret(s.value);
  // Also first: a short secret would not be redacted from a later message quoting it.
  refuseShortSecrets(secrets, display);
  rejectInlineSecrets(expanded, display, []);
  validateSchema(expanded, display);
  checkCrossFieldRules(expanded as unknown as RawProfile, display);
  const profile = resolveProfile(expanded as unknown as RawProfile, abs, display, env);
  checkNamedPaths(profile, display);
  return profile;
}

interface ReferencedSecret {
  field: string;
  env: string;
  value: string;
}

const SECRET_FIELDS = [
  ['gateway', 'api_key_env'],
  ['nats', 'token_env'],
  ['nats', 'password_env'],
  ['redis', 'password_env'],
] as const;

/** The secrets the (not yet validated) profile references by environment variable name, with their values. */
function referencedSecrets(data: Record<string, unknown>, env: NodeJS.ProcessEnv): ReferencedSecret[] {
  const found: ReferencedSecret[] = [];
  for (const [section, key] of SECRET_FIELDS) {
    const name = (data[section] as Record<string, unknown> | undefined)?.[key];
    const value = typeof name === 'string' ? env[name] : undefined;
    if (typeof name === 'string' && value) found.push({ field: `${section}.${key}`, env: name, value });
  }
  return found;
}

/**
 * A secret too short to redact safely (a 3-character key would blank ordinary words, and its
 * encodings collide with random text) is refused here, before anything could echo it.
 */
function refuseShortSecrets(secrets: ReferencedSecret[], display: string): void {
  for (const s of secrets) {
    if (s.value.length >= MIN_SECRET_LENGTH) continue;
    throw new ConfigError(
      `${display}: ${s.field}: the secret in ${s.env} is ${s.value.length} characters; secrets shorter than ${MIN_SECRET_LENGTH} cannot be redacted safely from output and reports (use a longer one)`,
    );
  }
}

/**
 * Files and folders the profile names are checked when they exist, so a FIFO or a device given as
 * a waiver file (which would block a step forever) is refused at load with exit 2. Missing ones are
 * left to the code that uses them (a waiver file is optional, a TLS file may be mounted later).
 */
function checkNamedPaths(p: TargetProfile, display: string): void {
  const paths: [string, string | undefined, readonly PathKind[]][] = [];
  const tls = (field: string, t: TlsRef | undefined) => {
    paths.push([`${field}.ca_file`, t?.ca_file, ['file']], [`${field}.cert_file`, t?.cert_file, ['file']], [`${field}.key_file`, t?.key_file, ['file']]);
  };
  tls('gateway.tls', p.gateway.tls);
  tls('nats.tls', p.nats?.tls);
  tls('redis.tls', p.redis?.tls);
  paths.push(['nats.creds_file', p.nats?.creds_file, ['file']], ['kube.kubeconfig', p.kube?.kubeconfig, ['file']]);
  p.policy.case_files.forEach((f, i) => paths.push([`policy.case_files[${i}]`, f, ['file']]));
  paths.push(['readiness.waivers', p.readiness?.waivers, ['file']], ['backup.dir', p.backup?.dir, ['dir']]);
  if (p.readiness?.manifests !== '-') paths.push(['readiness.manifests', p.readiness?.manifests, ['file', 'dir']]);
  for (const [field, path, kinds] of paths) {
    if (path === undefined || !existsSync(path)) continue;
    checkUserPath(path, { what: path, kinds, display: `${display}: ${field}` });
  }
}

// Kept in their own module so scenario workers can use them without loading the profile parser.
export { secretEnvNames, secretValues } from './profile-secrets.js';

// ---------------------------------------------------------------------------------------------
// Locating and reading

function locate(nameOrPath: string, cwd: string): { abs: string; display: string } {
  if (!nameOrPath) throw new ConfigError('no target given: pass a profile name (e.g. compose) or a path to a YAML file');
  const looksLikeName = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(nameOrPath) && !/\.ya?ml$/i.test(nameOrPath);
  if (looksLikeName) {
    const abs = join(TARGETS_DIR, `${nameOrPath}.yaml`);
    const display = `targets/${nameOrPath}.yaml`;
    if (!existsSync(abs)) {
      const known = availableTargets();
      throw new ConfigError(
        `unknown target "${nameOrPath}": ${display} does not exist (available: ${known.join(', ') || 'none'}; or pass a path to a profile file)`,
      );
    }
    return { abs, display };
  }
  const abs = resolve(cwd, nameOrPath);
  const rel = relative(cwd, abs);
  const display = rel && !rel.startsWith('..') && !isAbsolute(rel) ? rel : abs;
  if (!existsSync(abs)) throw new ConfigError(`${display}: profile file does not exist`);
  return { abs, display };
}

function readProfileText(abs: string, display: string): string {
  return readUserFile(abs, { what: 'target profile', maxBytes: MAX_PROFILE_BYTES, display });
}

function parseYaml(text: string, display: string): Record<string, unknown> {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { prettyErrors: false, uniqueKeys: true, lineCounter });
  const err = doc.errors[0];
  if (err) {
    const line = err.linePos?.[0]?.line ?? (err.pos ? lineCounter.linePos(err.pos[0]).line : undefined);
    const msg = err.message.split('\n')[0].replace(/ at line \d+, column \d+.*$/, '');
    throw new ConfigError(`${display}${line ? `:${line}` : ''}: YAML parse error: ${msg}`);
  }
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 50 });
  } catch (e) {
    throw new ConfigError(`${display}: YAML parse error: ${(e as Error).message}`);
  }
  if (data === null || data === undefined) throw new ConfigError(`${display}: file is empty; expected a mapping with at least a gateway section`);
  if (typeof data !== 'object' || Array.isArray(data)) {
    // The kind only, never the content: a file named by mistake (/proc/self/environ) may hold secrets.
    throw new ConfigError(`${display}: expected a mapping at the top level, got ${kindOf(data)}`);
  }
  return data as Record<string, unknown>;
}

// ---------------------------------------------------------------------------------------------
// ${VAR} interpolation, so one profile can serve several environments without editing it.

const VAR_RE = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

function interpolate(value: unknown, env: NodeJS.ProcessEnv, display: string, path: (string | number)[]): unknown {
  if (typeof value === 'string') {
    return value.replace(VAR_RE, (_m, name: string, fallback: string | undefined) => {
      const v = env[name];
      if (v !== undefined && v !== '') return v;
      if (fallback !== undefined) return fallback;
      throw new ConfigError(`${display}: ${fieldPath(path)}: environment variable ${name} is not set (use \${${name}:-default} for a default)`);
    });
  }
  if (Array.isArray(value)) return value.map((v, i) => interpolate(v, env, display, [...path, i]));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, interpolate(v, env, display, [...path, k])]));
  }
  return value;
}

// ---------------------------------------------------------------------------------------------
// Inline secrets. Checked before the schema so the message says "secret", not "unknown field".

const SECRET_KEYS: Record<string, string> = {
  api_key: 'gateway.api_key_env',
  apikey: 'gateway.api_key_env',
  'x-api-key': 'gateway.api_key_env',
  key: 'gateway.api_key_env',
  password: 'password_env',
  passwd: 'password_env',
  pass: 'password_env',
  token: 'token_env',
  api_token: 'token_env',
  auth_token: 'token_env',
  access_token: 'token_env',
  bearer: 'token_env',
  client_secret: 'an *_env field',
  private_key: 'key_file or tls.secret',
};

const PEM_RE = /-----BEGIN [A-Z0-9 ]*-----/;
const URL_PASSWORD_RE = /^[a-z][a-z0-9+.-]*:\/\/[^/\s@]*:[^/\s@]+@/i;

function rejectInlineSecrets(value: unknown, display: string, path: (string | number)[]): void {
  if (typeof value === 'string') {
    if (PEM_RE.test(value)) {
      throw new ConfigError(
        `${display}: ${fieldPath(path)}: looks like an inline PEM key or certificate; reference a file (ca_file, cert_file, key_file) or a Kubernetes secret (tls.secret) instead`,
      );
    }
    if (URL_PASSWORD_RE.test(value)) {
      throw new ConfigError(
        `${display}: ${fieldPath(path)}: URL contains an inline password (user:password@); remove it and name the environment variable that holds it with password_env`,
      );
    }
    return;
  }
  if (Array.isArray(value)) return value.forEach((v, i) => rejectInlineSecrets(v, display, [...path, i]));
  if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      const hint = SECRET_KEYS[k.toLowerCase()];
      // Labels are free-form text shown in reports; a key named "token" there is still a secret smell.
      if (hint) {
        throw new ConfigError(
          `${display}: ${fieldPath([...path, k])}: inline secrets are not allowed; put the value in an environment variable and reference it by name with ${hint}`,
        );
      }
      rejectInlineSecrets(v, display, [...path, k]);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Schema validation with readable messages

type JsonSchema = Record<string, any>;
let compiled: { validate: ValidateFunction; schema: JsonSchema } | undefined;

function schemaValidator(): { validate: ValidateFunction; schema: JsonSchema } {
  if (!compiled) {
    const schema = JSON.parse(readFileSync(SCHEMA_PATH, 'utf8')) as JsonSchema;
    compiled = { validate: precompiledValidator() ?? profileAjv().compile(schema), schema };
  }
  return compiled;
}

/**
 * The build's copy of the validator (bin/build.mjs writes it next to this module, from
 * profileValidatorSource). Compiling the schema costs ~130 ms of the runner's one thread while the
 * scenario worker, starting beside it, waits on that thread; the copy loads in a few. Running from
 * source there is none, and the schema is compiled here.
 */
function precompiledValidator(): ValidateFunction | undefined {
  if (import.meta.url.endsWith('.ts')) return undefined;
  try {
    return createRequire(import.meta.url)(`./${PRECOMPILED_VALIDATOR}`) as ValidateFunction;
  } catch {
    return undefined;
  }
}

/** The file name of the build's precompiled profile validator, beside the compiled target.js. */
export const PRECOMPILED_VALIDATOR = 'target-profile.validate.cjs';

/** The one Ajv configuration for the profile schema, at run time and in the build. */
function profileAjv(source = false): AjvInstance {
  const { Ajv } = createRequire(import.meta.url)('ajv') as typeof import('ajv');
  const ajv = new Ajv({ allErrors: false, verbose: true, strict: true, ...(source ? { code: { source: true } } : {}) });
  // Annotation-only keyword: the human wording of what a field should hold.
  ajv.addKeyword({ keyword: 'x-expected', schemaType: 'string' });
  return ajv;
}

/** The profile validator as a standalone CommonJS module (for the build; see precompiledValidator). */
export function profileValidatorSource(): string {
  const ajv = profileAjv(true);
  const validate = ajv.compile(JSON.parse(readFileSync(SCHEMA_PATH, 'utf8')) as JsonSchema);
  const standaloneCode = (createRequire(import.meta.url)('ajv/dist/standalone') as { default: (a: AjvInstance, v: ValidateFunction) => string }).default;
  return standaloneCode(ajv, validate);
}

function validateSchema(data: unknown, display: string): void {
  const { validate, schema } = schemaValidator();
  if (validate(data)) return;
  const err = validate.errors?.[0];
  if (!err) throw new ConfigError(`${display}: invalid target profile`);
  throw new ConfigError(`${display}: ${describeAjvError(err, schema)}`);
}

function describeAjvError(err: ErrorObject, root: JsonSchema): string {
  const path = err.instancePath
    .split('/')
    .slice(1)
    .map((seg) => seg.replace(/~1/g, '/').replace(/~0/g, '~'));
  const parent = (err.parentSchema ?? {}) as JsonSchema;
  if (err.keyword === 'required') {
    const prop = (err.params as { missingProperty: string }).missingProperty;
    const sub = deref(parent.properties?.[prop], root);
    const expected = sub?.['x-expected'] ? ` (expected ${sub['x-expected']})` : '';
    return `${fieldPath([...path, prop])}: required field is missing${expected}`;
  }
  if (err.keyword === 'additionalProperties') {
    const prop = (err.params as { additionalProperty: string }).additionalProperty;
    const allowed = Object.keys(parent.properties ?? {}).join(', ');
    return `${fieldPath([...path, prop])}: unknown field (allowed here: ${allowed})`;
  }
  const expected = parent['x-expected'] ?? err.message ?? 'a valid value';
  // A *_env field that fails validation often holds a pasted secret instead of a variable name:
  // say what kind of value it was, never the value itself.
  const last = String(path.at(-1) ?? '');
  if (last.endsWith('_env')) return `${fieldPath(path)}: expected ${expected}, got a ${typeof err.data} that is not an environment variable name (value not shown: it may be a secret)`;
  return `${fieldPath(path)}: expected ${expected}, got ${describe(err.data)}`;
}

function deref(s: JsonSchema | undefined, root: JsonSchema): JsonSchema | undefined {
  if (s?.$ref && typeof s.$ref === 'string' && s.$ref.startsWith('#/definitions/')) {
    return root.definitions?.[s.$ref.slice('#/definitions/'.length)];
  }
  return s;
}

function fieldPath(path: (string | number)[]): string {
  if (path.length === 0) return '(top level)';
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number' || /^\d+$/.test(String(seg))) out += `[${seg}]`;
    else out += out ? `.${seg}` : String(seg);
  }
  return out;
}

function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return `a list (${truncate(JSON.stringify(v), 60)})`;
  if (typeof v === 'object') return `a mapping (${truncate(JSON.stringify(v), 60)})`;
  return truncate(JSON.stringify(v), 80);
}

function kindOf(v: unknown): string {
  if (Array.isArray(v)) return `a list of ${v.length} item(s)`;
  if (typeof v === 'string') return `a text of ${v.length} characters`;
  return `a ${typeof v}`;
}

function truncate(s: string, n: number): string {
  return s.length > n ? `${s.slice(0, n - 1)}…` : s;
}

// ---------------------------------------------------------------------------------------------
// Rules JSON Schema draft-07 cannot say clearly

interface RawProfile {
  name?: string;
  description?: string;
  gateway: { url: string; api_key_env?: string; principal?: { id?: string; role?: string }; connect_timeout_ms?: number; request_timeout_ms?: number; tls?: TlsRef; tenant?: string; rate_limit?: { rps: number; burst?: number } };
  metrics?: TargetProfile['metrics'];
  workflow_engine?: TargetProfile['workflow_engine'];
  nats?: NonNullable<TargetProfile['nats']>;
  redis?: NonNullable<TargetProfile['redis']>;
  kube?: TargetProfile['kube'];
  routing?: Partial<TargetProfile['routing']>;
  policy?: { reload_interval_ms?: number; case_files?: string[] };
  destructive?: { allowed?: boolean };
  policy_impact?: TargetProfile['policy_impact'];
  backup?: TargetProfile['backup'];
  readiness?: TargetProfile['readiness'];
  labels?: Record<string, string>;
}

function checkCrossFieldRules(p: RawProfile, display: string): void {
  for (const svc of ['nats', 'redis'] as const) {
    const s = p[svc];
    if (!s) continue;
    if (!s.url && !s.port_forward) {
      throw new ConfigError(`${display}: ${svc}: expected url or port_forward, got neither`);
    }
    if (s.port_forward && !s.port_forward.namespace && !p.kube) {
      throw new ConfigError(`${display}: ${svc}.port_forward.namespace: required when the profile has no kube section (expected a Kubernetes namespace name)`);
    }
    if (s.tls?.secret && !p.kube) {
      throw new ConfigError(`${display}: ${svc}.tls.secret: a Kubernetes secret needs a kube section (namespace) to read it from`);
    }
  }
  if (p.gateway.tls?.secret && !p.kube) {
    throw new ConfigError(`${display}: gateway.tls.secret: a Kubernetes secret needs a kube section (namespace) to read it from`);
  }
  if (p.nats?.password_env && !p.nats.user) {
    throw new ConfigError(`${display}: nats.user: required with nats.password_env (expected a user name)`);
  }
  if (p.nats?.user && !p.nats.password_env) {
    throw new ConfigError(`${display}: nats.password_env: required with nats.user (expected the NAME of an environment variable)`);
  }
  if (p.nats?.token_env && (p.nats.user || p.nats.creds_file)) {
    throw new ConfigError(`${display}: nats.token_env: use one of token_env, user/password_env or creds_file, not several`);
  }
  if (p.routing?.mapped_topic && p.routing.mapped_topic === p.routing.unmapped_topic) {
    throw new ConfigError(`${display}: routing.unmapped_topic: expected a topic different from routing.mapped_topic, got the same "${p.routing.unmapped_topic}"`);
  }
}

// ---------------------------------------------------------------------------------------------
// Defaults and path resolution

function resolveProfile(p: RawProfile, abs: string, display: string, env: NodeJS.ProcessEnv): TargetProfile {
  const dir = dirname(abs);
  const file = (f: string | undefined): string | undefined => (f === undefined ? undefined : resolvePath(f, dir, env));
  const tls = (t: TlsRef | undefined): TlsRef | undefined =>
    t && { ...t, ca_file: file(t.ca_file), cert_file: file(t.cert_file), key_file: file(t.key_file) };
  const strip = <T extends object>(o: T): T => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;

  const profile: TargetProfile = {
    name: p.name ?? basename(abs, extname(abs)),
    source: display,
    description: p.description,
    gateway: strip({
      url: p.gateway.url.replace(/\/+$/, ''),
      api_key_env: p.gateway.api_key_env,
      principal: p.gateway.principal,
      connect_timeout_ms: p.gateway.connect_timeout_ms ?? PROFILE_DEFAULTS.connect_timeout_ms,
      request_timeout_ms: p.gateway.request_timeout_ms ?? PROFILE_DEFAULTS.request_timeout_ms,
      tls: tls(p.gateway.tls),
      tenant: p.gateway.tenant,
      rate_limit: p.gateway.rate_limit,
    }),
    metrics: p.metrics,
    workflow_engine: p.workflow_engine,
    nats: p.nats && strip({ ...p.nats, creds_file: file(p.nats.creds_file), tls: tls(p.nats.tls) }),
    redis: p.redis && strip({ ...p.redis, tls: tls(p.redis.tls) }),
    kube: p.kube && strip({ ...p.kube, kubeconfig: file(p.kube.kubeconfig) }),
    routing: { ...PROFILE_DEFAULTS.routing, ...p.routing },
    policy: {
      reload_interval_ms: p.policy?.reload_interval_ms ?? PROFILE_DEFAULTS.policy.reload_interval_ms,
      case_files: (p.policy?.case_files ?? []).map((f) => resolvePath(f, dir, env)),
    },
    destructive: { allowed: p.destructive?.allowed ?? PROFILE_DEFAULTS.destructive.allowed },
    policy_impact: p.policy_impact,
    backup: p.backup && strip({ ...p.backup, dir: file(p.backup.dir) }),
    readiness: p.readiness && strip({ manifests: p.readiness.manifests === '-' ? '-' : file(p.readiness.manifests), waivers: file(p.readiness.waivers) }),
    labels: p.labels,
  };
  return strip(profile);
}

function resolvePath(f: string, dir: string, env: NodeJS.ProcessEnv): string {
  if (f === '~' || f.startsWith('~/')) {
    const home = env.HOME ?? process.env.HOME ?? '';
    return join(home, f.slice(1));
  }
  return resolve(dir, f);
}
