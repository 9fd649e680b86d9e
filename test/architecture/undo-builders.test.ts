// Scenarios never write an HTTP undo by hand: routes and id encoding belong to the gateway client,
// and helpers/undo.ts builds undo actions from them (a hand-written path that goes stale would be
// a leftover nobody sees). Redis and local undo actions are not routes and stay in scenarios.
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const REPO = resolve(import.meta.dirname, '../..');

function scenarioFiles(dir = join(REPO, 'scenarios')): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? scenarioFiles(join(dir, e.name)) : /\.ts$/.test(e.name) ? [join(dir, e.name)] : [],
  );
}

/** An object literal that is an HTTP undo action, or one that carries a gateway path. */
const HAND_WRITTEN_UNDO = /kind:\s*['"]http['"]|path:\s*[`'"]\/api\//g;

describe('undo actions in scenarios', () => {
  it('are built by helpers (helpers/undo.ts, policy-bundles rollbackAction), never literal HTTP paths', () => {
    const found: string[] = [];
    for (const file of scenarioFiles()) {
      const lines = readFileSync(file, 'utf8').split('\n');
      lines.forEach((line, i) => {
        if (HAND_WRITTEN_UNDO.test(line)) found.push(`${relative(REPO, file)}:${i + 1}: ${line.trim()}`);
        HAND_WRITTEN_UNDO.lastIndex = 0;
      });
    }
    expect(found, 'use undo.workflow(id), undo.run(id), undo.job(id), undo.dlqEntry(id), undo.lock(resource, owner)').toEqual([]);
  });
});
