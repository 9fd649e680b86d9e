// The scenario worker thread's entry when the runner starts the thread early
// (cli/run/scenario-thread.ts). Vitest's own worker entry comes first, so the thread answers
// Vitest's messages exactly as a thread Vitest started would. Then, while Vitest's main side is
// still loading, the modules the scenario files can load (cli/run/module-graph.ts): the helpers,
// undici, and what steps load on demand (ioredis, nats.js, the CAP codec). Loading only: nothing
// connects or runs. Node's module cache then gives the scenario files these very instances. A
// module that fails to load here fails again, reported, when a scenario file needs it, so errors
// are ignored here.
import { workerData } from 'node:worker_threads';
import { moduleGraph } from './module-graph.js';

const { vitestEntry, scenarioFiles } = workerData as { vitestEntry: string; scenarioFiles: string[] };
await import(vitestEntry);
for (const url of moduleGraph(scenarioFiles)) await import(url).catch(() => {});
