// Allure's results of one run, written into the runner's staging folder the way allure-js-commons'
// FileSystemWriter writes them (the same file names, the same JSON and bytes), without what that
// writer adds for results other processes read while they are written: a temp file, an fsync and a
// rename per file. allure-vitest writes every result and attachment of a run when the run ends, on
// the runner's thread, on the way to the verdict: ~70 files, ~45 ms, half of it fsync; and an fsync
// right after a run's other writes can take 20 ms by itself. The staging folder is the runner's own
// until the report reads it moments later (cli/run/vitest-session.ts), and a crash in between loses
// the run with or without fsync.
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringifyEnvInfo, type Writer } from 'allure-js-commons/sdk/reporter';

type Result = Parameters<Writer['writeResult']>[0];
type Container = Parameters<Writer['writeGroup']>[0];

export class StagingResultsWriter implements Writer {
  private made = false;
  constructor(private readonly resultsDir: string) {}

  writeResult(result: Result): void {
    this.json(`${result.uuid}-result.json`, result);
  }
  writeGroup(result: Container): void {
    this.json(`${result.uuid}-container.json`, result);
  }
  writeAttachment(distFileName: string, content: Buffer): void {
    writeFileSync(this.path(distFileName), content);
  }
  writeAttachmentFromPath(distFileName: string, from: string): void {
    copyFileSync(from, this.path(distFileName));
  }
  writeEnvironmentInfo(info: Parameters<Writer['writeEnvironmentInfo']>[0]): void {
    writeFileSync(this.path('environment.properties'), stringifyEnvInfo(info), 'utf-8');
  }
  writeCategoriesDefinitions(categories: Parameters<Writer['writeCategoriesDefinitions']>[0]): void {
    this.json('categories.json', categories);
  }
  writeGlobals(distFileName: string, info: Parameters<Writer['writeGlobals']>[1]): void {
    this.json(distFileName, info);
  }

  private json(name: string, value: unknown): void {
    writeFileSync(this.path(name), JSON.stringify(value), 'utf-8');
  }
  private path(name: string): string {
    if (!this.made) mkdirSync(this.resultsDir, { recursive: true });
    this.made = true;
    return join(this.resultsDir, name);
  }
}
