// The run's Allure results are written without Allure's temp file, fsync and rename per file
// (helpers/report/results-writer.ts), and must still be what Allure's own writer writes: the same
// files, byte for byte.
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileSystemWriter, type Writer } from 'allure-js-commons/sdk/reporter';
import { afterAll, describe, expect, it } from 'vitest';
import { StagingResultsWriter } from '../../helpers/report/results-writer.js';

const tmp = mkdtempSync(join(tmpdir(), 'results-writer-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function writeAll(w: Writer, source: string): void {
  const result = {
    uuid: '0a5db10b-bd35-4dd1-bf5f-6fc8cfe50edf',
    name: 'Liveness and readiness — “ok” ✓',
    status: 'passed',
    stage: 'finished',
    start: 1,
    stop: 2,
    steps: [],
    attachments: [{ name: 'evidence', source: 'e-attachment.json', type: 'application/json' }],
    labels: [{ name: 'suite', value: 'Smoke' }],
    links: [],
    parameters: [],
    fullName: 'scenarios/smoke/smoke.test.ts#Liveness',
    historyId: 'h',
    testCaseId: 't',
  };
  w.writeResult(result as unknown as Parameters<Writer['writeResult']>[0]);
  w.writeGroup({ uuid: 'c1', name: 'file', children: [result.uuid], befores: [], afters: [] } as Parameters<Writer['writeGroup']>[0]);
  w.writeAttachment('e-attachment.json', Buffer.from('{"status":"ok","bytes":"\u0000\u00ff"}'));
  w.writeAttachmentFromPath('f-attachment.txt', source);
  w.writeEnvironmentInfo({ target: 'sandbox', 'run id': 'r-1' });
  w.writeCategoriesDefinitions([{ name: 'Product defects', matchedStatuses: ['failed'] }] as Parameters<Writer['writeCategoriesDefinitions']>[0]);
  w.writeGlobals('g-globals.json', { attachments: [], errors: [] } as Parameters<Writer['writeGlobals']>[1]);
}

const contents = (dir: string) => Object.fromEntries(readdirSync(dir).sort().map((f) => [f, readFileSync(join(dir, f)).toString('base64')]));

describe('the staging results writer', () => {
  it('writes the files Allure’s FileSystemWriter writes, with the same bytes', () => {
    const source = join(tmp, 'source.txt');
    writeFileSync(source, 'a step log\nline two\n');
    const allure = join(tmp, 'allure');
    const ours = join(tmp, 'ours');
    writeAll(new FileSystemWriter({ resultsDir: allure }), source);
    writeAll(new StagingResultsWriter(ours), source);
    expect(Object.keys(contents(ours))).toHaveLength(7);
    expect(contents(ours)).toEqual(contents(allure));
  });
});
