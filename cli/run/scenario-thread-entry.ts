// The scenario worker thread's entry when the runner starts the thread early
// (cli/run/scenario-thread.ts). Vitest's own worker entry comes first, so the thread answers
// Vitest's messages exactly as a thread Vitest started would. Then, while Vitest's main side is
// still loading, what the thread would otherwise load after Vitest's first message
// (cli/run/module-graph.ts, from the files in workerData.ahead): Vitest's on-demand chunks, the
// modules of the setup file the Allure reporter adds, the helpers and undici, and what steps load on
// demand (ioredis, nats.js, the CAP codec). Loading only: nothing connects or runs, and the files
// in `ahead` themselves are not loaded. Node's module cache then gives Vitest and the scenario
// files these very instances. A module that fails to load here fails again, reported, when it is
// needed, so errors are ignored here.
import { workerData } from 'node:worker_threads';
import { moduleGraph } from './module-graph.js';

const { vitestEntry, ahead } = workerData as { vitestEntry: string; ahead: string[] };
await import(vitestEntry);
for (const url of moduleGraph(ahead)) await import(url).catch(() => {});
