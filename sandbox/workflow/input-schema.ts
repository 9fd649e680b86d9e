// Run input validation against the workflow's input_schema (JSON Schema), with ajv.
import AjvModule from 'ajv';
import type { ValidateFunction } from 'ajv';

// ajv ships CommonJS; under NodeNext the class is the default export's `default`.
const Ajv = ((AjvModule as unknown as { default?: typeof AjvModule }).default ?? AjvModule) as unknown as typeof AjvModule.default;
const ajv = new Ajv({ allErrors: true, strict: false });
const cache = new Map<string, ValidateFunction>();

/**
 * Returns null when valid, else the error as Cordum words it (Go's santhosh-tekuri/jsonschema, as
 * recorded): `schema validation failed: jsonschema: '<instance path>' does not validate with
 * inmemory://inline#<schema path>: <what>`, for the first failing keyword.
 */
export function validateRunInput(schema: Record<string, unknown>, input: unknown): string | null {
  const key = JSON.stringify(schema);
  let validate = cache.get(key);
  if (!validate) {
    try {
      validate = ajv.compile(schema);
    } catch (err) {
      return `invalid schema: ${(err as Error).message}`;
    }
    cache.set(key, validate);
  }
  if (validate(input)) return null;
  const errors = validate.errors ?? [];
  const first = errors[0];
  if (!first) return 'schema validation failed';
  const schemaPath = first.schemaPath.replace(/^#/, '');
  let what = first.message ?? 'invalid';
  if (first.keyword === 'required') {
    // ajv reports one error per missing property; Go lists them together.
    const missing = errors
      .filter((e) => e.keyword === 'required' && e.instancePath === first.instancePath)
      .map((e) => `'${(e.params as { missingProperty: string }).missingProperty}'`);
    what = `missing properties: ${missing.join(', ')}`;
  } else if (first.keyword === 'type') {
    what = `expected ${(first.params as { type: string }).type}, but got ${goJsonType(valueAt(input, first.instancePath))}`;
  }
  return `schema validation failed: jsonschema: '${first.instancePath}' does not validate with inmemory://inline#${schemaPath}: ${what}`;
}

function valueAt(root: unknown, pointer: string): unknown {
  let v = root;
  for (const part of pointer.split('/').slice(1)) {
    const key = part.replace(/~1/g, '/').replace(/~0/g, '~');
    v = v && typeof v === 'object' ? (v as Record<string, unknown>)[key] : undefined;
  }
  return v;
}

function goJsonType(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}
