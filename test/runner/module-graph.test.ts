// What the early scenario thread loads ahead (cli/run/module-graph.ts): the modules a compiled
// scenario file can load, read from esbuild-style import statements, in a tree of temp files.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { moduleGraph } from '../../cli/run/module-graph.js';

const root = mkdtempSync(join(tmpdir(), 'module-graph-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function files(tree: Record<string, string>): (rel: string) => string {
  for (const [rel, text] of Object.entries(tree)) {
    mkdirSync(dirname(join(root, rel)), { recursive: true });
    writeFileSync(join(root, rel), text);
  }
  return (rel) => pathToFileURL(join(root, rel)).href;
}

describe('moduleGraph', () => {
  it('follows static imports (one or several lines, re-exports, side effects), then on-demand imports', () => {
    const url = files({
      'scenarios/a/a.test.js': [
        'import { x } from "../../helpers/steps.js";',
        'import {',
        '  y,',
        '  z',
        '} from "../../helpers/waits.js";',
        'import "../../helpers/side-effect.js";',
        'import * as fs from "node:fs";',
        'import { test } from "vitest";',
        'const later = () => import("../../helpers/bus.js");',
      ].join('\n'),
      'helpers/steps.js': 'export * from "./errors.js";\nimport { request } from "../vendor/undici.js";\nexport const x = () => import("./redis.js");\n',
      'helpers/waits.js': 'import { x } from "./steps.js";\nexport const y = 1, z = 2;\n',
      'helpers/errors.js': 'export class E extends Error {}\n',
      'helpers/side-effect.js': '',
      'helpers/bus.js': 'import { connect } from "../vendor/nats.js";\nimport "./cap/codec.js";\n',
      'helpers/redis.js': 'import { Redis } from "../vendor/ioredis.js";\n',
      'helpers/cap/codec.js': 'export const codec = 1;\n',
      // Not read: a bundle imports nothing of the build's, and reading megabytes would cost time.
      'vendor/undici.js': 'import "../helpers/never.js";\n' + '//'.repeat(200_000),
      'vendor/nats.js': '',
      'vendor/ioredis.js': '',
    });
    expect(moduleGraph([join(root, 'scenarios/a/a.test.js')])).toEqual([
      // what loading the file loads anyway, depth first
      url('helpers/steps.js'),
      url('helpers/errors.js'),
      url('vendor/undici.js'),
      url('helpers/waits.js'),
      url('helpers/side-effect.js'),
      // what the on-demand modules load, then those modules, in the order they were found
      url('vendor/ioredis.js'),
      url('vendor/nats.js'),
      url('helpers/cap/codec.js'),
      url('helpers/redis.js'),
      url('helpers/bus.js'),
    ]);
  });

  it("reads single-quoted imports too (Vitest's own chunks), with or without the semicolon", () => {
    const url = files({
      'vitest/dist/workers/threads.js': "import { w as workerInit } from '../chunks/init.js';\nimport 'node:fs'\n",
      'vitest/dist/chunks/init.js': "import { x } from './rpc.js'\nconst later = () => import('./console.js');\n",
      'vitest/dist/chunks/rpc.js': '',
      'vitest/dist/chunks/console.js': '',
    });
    expect(moduleGraph([join(root, 'vitest/dist/workers/threads.js')])).toEqual([
      url('vitest/dist/chunks/init.js'),
      url('vitest/dist/chunks/rpc.js'),
      url('vitest/dist/chunks/console.js'),
    ]);
  });

  it('lists a module once, never the entry files themselves, and lists a file it cannot read without failing', () => {
    const url = files({
      'scenarios/b/one.test.js': 'import "./two.test.js";\nimport "../../helpers/shared.js";\nimport "../../helpers/missing.js";\n',
      'scenarios/b/two.test.js': 'import "../../helpers/shared.js";\nimport "./one.test.js";\n',
      'helpers/shared.js': 'import "./shared.js";\n',
    });
    expect(moduleGraph([join(root, 'scenarios/b/one.test.js'), join(root, 'scenarios/b/two.test.js')])).toEqual([
      url('helpers/shared.js'),
      url('helpers/missing.js'),
    ]);
  });
});
