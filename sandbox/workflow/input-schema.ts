// Run input validation against the workflow's input_schema (JSON Schema), with ajv.
import AjvModule from 'ajv';
import type { ValidateFunction } from 'ajv';

// ajv ships CommonJS; under NodeNext the class is the default export's `default`.
const Ajv = ((AjvModule as unknown as { default?: typeof AjvModule }).default ?? AjvModule) as unknown as typeof AjvModule.default;
const ajv = new Ajv({ allErrors: true, strict: false });
const cache = new Map<string, ValidateFunction>();

/** Returns null when valid, else a readable error list. */
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
  return ajv.errorsText(validate.errors, { dataVar: 'input' });
}
