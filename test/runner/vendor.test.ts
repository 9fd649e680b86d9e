// The bundles of third-party packages (bin/vendor.mjs): a bundled module that finds files beside
// itself through import.meta.url (as Allure's report engine does) still finds them beside its
// original, and text that merely mentions import.meta.url is left as it was.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import { afterAll, describe, expect, it } from 'vitest';
import { bundleOptions, rewriteImports } from '../../bin/vendor.mjs';

const tmp = mkdtempSync(join(tmpdir(), 'vendor-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('a bundled package', () => {
  it('resolves import.meta.url to its original file, from wherever the build is; strings keep their text', async () => {
    const pkg = join(tmp, 'node_modules', 'assets-beside');
    mkdirSync(join(pkg, 'lib'), { recursive: true });
    writeFileSync(join(pkg, 'lib', 'index.js'), [
      "export const here = import.meta.url;",
      "export const asset = new URL('../data/app.tar', import.meta.url).href;",
      "export const text = 'use import.meta.url to find files';",
      "export const template = `a ${'b'} import.meta.url`;",
    ].join('\n'));
    const root = join(tmp, 'dist');
    const loadedFrom = join(root, 'abc123', 'vendor');
    mkdirSync(loadedFrom, { recursive: true });
    await build({ ...bundleOptions(root, join(loadedFrom, 'assets.js')), stdin: { contents: `export * from ${JSON.stringify(join(pkg, 'lib', 'index.js'))};`, resolveDir: tmp, loader: 'js' } });
    const m = (await import(pathToFileURL(join(loadedFrom, 'assets.js')).href)) as Record<string, string>;
    expect(m.here).toBe(pathToFileURL(join(pkg, 'lib', 'index.js')).href);
    expect(m.asset).toBe(pathToFileURL(join(pkg, 'data', 'app.tar')).href);
    expect(m.text).toBe('use import.meta.url to find files');
    expect(m.template).toBe('a b import.meta.url');
  });

  it('refuses a package that reads another import.meta property, which the bundle would answer for it', async () => {
    const pkg = join(tmp, 'node_modules', 'reads-dirname');
    mkdirSync(pkg, { recursive: true });
    writeFileSync(join(pkg, 'index.js'), 'export const here = import.meta.dirname;\n');
    const out = join(tmp, 'dist', 'abc123', 'vendor', 'dirname.js');
    await expect(
      build({ ...bundleOptions(join(tmp, 'dist'), out), stdin: { contents: `export * from ${JSON.stringify(join(pkg, 'index.js'))};`, resolveDir: tmp, loader: 'js' } }),
    ).rejects.toThrow(/reads-dirname\/index\.js reads import\.meta\.dirname/);
  });

  it('is imported from the build’s vendor/ by every compiled module that names its package', () => {
    const code = ['import { request } from "undici";', 'const y = await import("yaml");', 'import "commander";', 'import { x } from "undici-extra";'].join('\n');
    expect(rewriteImports(code, '../vendor')).toBe(
      ['import { request } from "../vendor/undici.js";', 'const y = await import("../vendor/yaml.js");', 'import "../vendor/commander.js";', 'import { x } from "undici-extra";'].join('\n'),
    );
  });
});
