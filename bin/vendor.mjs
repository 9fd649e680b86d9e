// Third-party code that every run loads, bundled once per dependency set (part of bin/build.mjs).
//
// Node loads a package that ships as a hundred files a hundred times over: resolve, stat, read,
// compile, link. The Allure report engine alone is ~950 modules and ~0.75 s of CPU to load; undici
// ~0.15 s in each thread that makes an HTTP call; ioredis and nats.js ~0.2 s in the scenario
// worker. Bundled into one file each, they load in a third to a half of that. Only packages that
// every run pays for are bundled; the rest load from node_modules as usual (a package whose
// behaviour depends on what it finds beside it, such as protobufjs looking for `long`, stays where
// it is).
//
// A bundle depends on the installed dependencies only, so it is kept in dist/vendor-<hash>/ and
// linked into each build: editing a helper rebuilds the project's modules (~0.3 s), not these.
// Compiled modules import a bundled package through `<build>/vendor/<name>.js` (rewriteImports).
//
// Plain JavaScript on purpose: it runs before anything is compiled.
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, linkSync, mkdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, sep } from 'node:path';
import { pathToFileURL } from 'node:url';
import { makeDirAtomically } from './atomic-dir.mjs';

/**
 * Packages imported by name from the compiled modules, and the bundled file that serves them. The
 * nats.js packages share one bundle: they import one another, and separate bundles would each carry
 * their own copy of @nats-io/nats-core (two connection classes, two sets of errors).
 */
export const BUNDLES = [
  { file: 'undici.js', packages: ['undici'] },
  { file: 'yaml.js', packages: ['yaml'] },
  { file: 'commander.js', packages: ['commander'] },
  { file: 'ioredis.js', packages: ['ioredis'] },
  { file: 'nats.js', packages: ['@nats-io/transport-node', '@nats-io/nats-core', '@nats-io/jetstream'] },
];
/** The Allure report engine (core, its CI detection and the awesome plugin), loaded by helpers/report/allure.ts. */
export const REPORT_ENGINE = 'allure-report.js';

/** Where a build keeps its bundles, relative to the build directory. */
export const VENDOR_DIR = 'vendor';

const BUNDLE_OF = new Map(BUNDLES.flatMap((b) => b.packages.map((p) => [p, b.file])));

/**
 * Paths of the report engine's parts, found the way the `allure` CLI finds them: core is a
 * dependency of `allure`, not of ours, and ci and the plugin are core's own.
 */
function reportEngineParts(repo) {
  const allureEntry = createRequire(join(repo, 'package.json')).resolve('allure');
  const core = createRequire(allureEntry).resolve('@allurereport/core');
  const from = createRequire(core);
  return { core, ci: from.resolve('@allurereport/ci'), awesome: from.resolve('@allurereport/plugin-awesome') };
}

/** Installed version of each bundled package (and the engine's parts): the bundles' identity. */
function installedVersions(repo) {
  const req = createRequire(join(repo, 'package.json'));
  const versionOf = (entry) => {
    for (let dir = dirname(entry); dir !== dirname(dir); dir = dirname(dir)) {
      const pj = join(dir, 'package.json');
      if (!existsSync(pj)) continue;
      const { name, version } = JSON.parse(readFileSync(pj, 'utf8'));
      if (name) return `${name}@${version} ${dir}`;
    }
    return entry;
  };
  const parts = reportEngineParts(repo);
  return [...[...BUNDLE_OF.keys()].map((p) => versionOf(req.resolve(p))), ...Object.values(parts).map(versionOf)];
}

/**
 * dist/vendor-<hash>: the hash covers this file, the esbuild version, every bundled package's version
 * and the lockfile (a bundle also holds its packages' own dependencies, whose versions only the
 * lockfile names).
 */
function cacheDirFor(root, repo) {
  const h = createHash('sha256');
  h.update(readFileSync(new URL(import.meta.url)));
  const lock = join(repo, 'pnpm-lock.yaml');
  if (existsSync(lock)) h.update(readFileSync(lock));
  h.update(createRequire(join(repo, 'package.json'))('esbuild/package.json').version);
  for (const v of installedVersions(repo)) h.update(`${v}\n`);
  return join(root, `vendor-${h.digest('hex').slice(0, 16)}`);
}

/**
 * A bundled module still finds files beside its original (Allure reads its own package.json and
 * the report app's archive through `new URL(..., import.meta.url)`): in each module that uses it,
 * `import.meta.url` (as an expression: esbuild's define, so strings and comments are left alone)
 * becomes the original file's URL, written relative to where the bundle is loaded from
 * (<build>/vendor/), so a checkout that moves keeps working. CommonJS parts get a real `require`
 * (esbuild's ESM output has none of its own).
 */
export function bundleOptions(root, outfile) {
  const loadedFrom = join(root, '<build>', VENDOR_DIR);
  return {
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20.19',
    outfile,
    logLevel: 'silent',
    legalComments: 'none',
    // Whitespace and syntax only (names are kept, so stacks still name functions): a third less
    // text to read, decode and parse on every load (undici ~15 ms less per thread). No source map:
    // Vitest's threads enable source maps, and Node 20 then reads and parses a module's map as it
    // loads it, megabytes for these.
    minifyWhitespace: true,
    minifySyntax: true,
    banner: {
      js: [
        "import { createRequire as __vendorRequire } from 'node:module';",
        'const require = __vendorRequire(import.meta.url);',
        'const __vendorBase = import.meta.url;',
      ].join('\n'),
    },
    define: { 'import.meta.url': '__vendorMetaUrl' },
    plugins: [
      {
        name: 'original-import-meta-url',
        setup(b) {
          b.onLoad({ filter: /\.(?:c|m)?js$/ }, (args) => {
            const src = readFileSync(args.path, 'utf8');
            if (!src.includes('import.meta')) return undefined;
            // Only import.meta.url is carried over; a module that reads another property (dirname,
            // resolve, ...) would get the bundle's, silently. Such a package cannot be bundled here.
            const other = /\bimport\.meta\.(?!url\b)([A-Za-z_$][\w$]*)/.exec(src);
            if (other) throw new Error(`${args.path} reads import.meta.${other[1]}, which a bundle cannot carry over (bin/vendor.mjs)`);
            const rel = relative(loadedFrom, args.path).split(sep).join('/');
            // A module-scope binding of its own (esbuild renames it apart from other modules').
            const own = `const __vendorMetaUrl = new URL(${JSON.stringify(rel)}, __vendorBase).href;\n`;
            const hashbang = /^#![^\n]*\n/.exec(src)?.[0] ?? '';
            return { contents: hashbang + own + src.slice(hashbang.length), loader: 'js' };
          });
        },
      },
    ],
  };
}

/**
 * Packages the report engine imports for what the runner never asks of it, left out of its bundle:
 * reading allurerc config files (jiti, yaml: the runner passes its configuration as an object),
 * uploading to the Allure service (axios: no allureService configuration), writing and reading
 * state dumps (zip-stream, node-stream-zip: no `dump`). A third of the bundle, compiled by every
 * run while the steps run. Each becomes an empty module: should the engine ever call into one, it
 * fails at once with a TypeError, and the report tests fail with it. Only imports from Allure's own
 * packages are replaced.
 */
export const LEFT_OUT_OF_REPORT_ENGINE = ['jiti', 'yaml', 'axios', 'zip-stream', 'node-stream-zip'];

const leaveOut = {
  name: 'leave-out',
  setup(b) {
    const names = new RegExp(`^(?:${LEFT_OUT_OF_REPORT_ENGINE.join('|')})$`);
    b.onResolve({ filter: names }, (args) =>
      /[\\/]@allurereport[\\/]/.test(args.importer) ? { path: args.path, namespace: 'left-out' } : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: 'left-out' }, (args) => ({
      contents: `// ${args.path}: left out of the report engine's bundle (bin/vendor.mjs LEFT_OUT_OF_REPORT_ENGINE)\nmodule.exports = {};\n`,
      loader: 'js',
    }));
  },
};

async function buildBundles(repo, dir) {
  const { build } = await import('esbuild');
  const { core, ci, awesome } = reportEngineParts(repo);
  const jobs = [
    {
      file: REPORT_ENGINE,
      contents: [
        `export { resolveConfig, AllureReport } from ${JSON.stringify(core)};`,
        `export * as ci from ${JSON.stringify(ci)};`,
        `export { default as AwesomePlugin, prepareSingleFile } from ${JSON.stringify(awesome)};`,
      ].join('\n'),
    },
  ];
  const req = createRequire(join(repo, 'package.json'));
  for (const bundle of BUNDLES) {
    // Named exports as Node sees them (for CommonJS, what cjs-module-lexer finds), so `import { x }`
    // from the bundle binds exactly what `import { x } from '<pkg>'` did. No default export: the
    // project imports these packages by name only (a default import would fail at once, in every
    // test that loads the module).
    const from = new Map();
    const lines = [];
    for (const pkg of bundle.packages) {
      const ns = await import(pathToFileURL(req.resolve(pkg)).href);
      const names = Object.keys(ns).filter((n) => n !== 'default' && !n.startsWith('__') && /^[A-Za-z_$][\w$]*$/.test(n));
      const own = [];
      for (const n of names) {
        const first = from.get(n);
        if (!first) {
          from.set(n, { pkg, value: ns[n] });
          own.push(n);
        } else if (first.value !== ns[n]) {
          throw new Error(`${pkg} and ${first.pkg} both export '${n}', as different things: they cannot share ${bundle.file}`);
        }
      }
      if (own.length) lines.push(`export { ${own.join(', ')} } from ${JSON.stringify(pkg)};`);
    }
    jobs.push({ file: bundle.file, contents: lines.join('\n') });
  }
  await Promise.all(
    jobs.map((j) => {
      const options = bundleOptions(dirname(dir), join(dir, j.file));
      if (j.file === REPORT_ENGINE) options.plugins = [leaveOut, ...options.plugins];
      return build({ ...options, stdin: { contents: j.contents, resolveDir: repo, loader: 'js', sourcefile: j.file } });
    }),
  );
}

/**
 * The bundles for the installed dependencies, built into dist/vendor-<hash>/ unless they are there
 * already, and linked into `buildDir`/vendor/. Returns the build's vendor directory.
 */
export async function vendorInto(repo, root, buildDir) {
  const cache = cacheDirFor(root, repo);
  const complete = join(cache, 'BUILD');
  if (existsSync(complete)) {
    // In use: not pruned (bin/build.mjs prunes what was not used for hours).
    try {
      const now = new Date();
      utimesSync(cache, now, now);
    } catch {
      // not writable
    }
  } else {
    // Another build may make the same bundles at the same time: the first complete one stays.
    await makeDirAtomically(cache, () => existsSync(complete), async (tmp) => {
      await buildBundles(repo, tmp);
      writeFileSync(join(tmp, 'BUILD'), `${new Date().toISOString()}\n${installedVersions(repo).join('\n')}\n`);
    });
  }
  const out = join(buildDir, VENDOR_DIR);
  mkdirSync(out, { recursive: true });
  for (const f of [REPORT_ENGINE, ...BUNDLES.map((b) => b.file)]) {
    try {
      linkSync(join(cache, f), join(out, f));
    } catch {
      copyFileSync(join(cache, f), join(out, f));
    }
  }
  return out;
}

const BARE_IMPORT = new RegExp(
  String.raw`(\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)(["'])(${[...BUNDLE_OF.keys()].map((p) => p.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')).join('|')})\2`,
  'g',
);

/**
 * esbuild's output of one module with its imports of a bundled package pointed at the bundle
 * (`vendorRel`: the build's vendor directory, relative to that module's directory, '/'-separated).
 */
export function rewriteImports(code, vendorRel) {
  return code.replace(BARE_IMPORT, (_m, head, q, pkg) => `${head}${q}${vendorRel}/${BUNDLE_OF.get(pkg)}${q}`);
}
