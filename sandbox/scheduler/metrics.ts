// The scheduler's Prometheus endpoint (Cordum: :9090/metrics, namespace cordum_scheduler) on its
// own registry so several sandboxes in one process do not share counters. Families without samples
// are left out of the exposition, as the Go client does.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Registry, collectDefaultMetrics } from 'prom-client';
import { omitEmptyFamilies } from '../metrics-text.js';

export interface SchedulerMetrics {
  received: Counter<'topic'>;
  dispatched: Counter<'topic'>;
  completed: Counter<'topic' | 'status'>;
  safetyDenied: Counter<'topic'>;
  registry: Registry;
}

export function createSchedulerMetrics(): SchedulerMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const mk = <L extends string>(name: string, help: string, labelNames: L[]) => new Counter<L>({ name, help, labelNames, registers: [registry] });
  return {
    registry,
    received: mk('cordum_scheduler_jobs_received_total', 'Job requests handled (redeliveries included).', ['topic']),
    dispatched: mk('cordum_scheduler_jobs_dispatched_total', 'Job requests dispatched to workers.', ['topic']),
    completed: mk('cordum_scheduler_jobs_completed_total', 'Jobs reaching a terminal state through the scheduler.', ['topic', 'status']),
    safetyDenied: mk('cordum_scheduler_safety_denied_total', 'Jobs denied by the safety kernel.', ['topic']),
  };
}

export async function serveMetrics(metrics: SchedulerMetrics, port: number): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/metrics') {
      res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' }).end('404 page not found\n');
      return;
    }
    metrics.registry
      .metrics()
      .then((body) => res.writeHead(200, { 'Content-Type': metrics.registry.contentType }).end(omitEmptyFamilies(body)))
      .catch((err) => res.writeHead(500).end(String(err)));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  const actual = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${actual}/metrics`,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
