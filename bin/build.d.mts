// Types of bin/build.mjs for the TypeScript that imports it (bench, tests).
export declare const REPO: string;
export declare const SOURCE_DIRS: string[];
export declare function distRoot(repo?: string): string;
export declare function fingerprint(repo?: string): string;
export declare function buildDirFor(repo?: string): string;
export declare function isComplete(dir: string): boolean;
export declare function currentBuild(opts?: { repo?: string; onBuild?: (where: string) => void }): Promise<{ dir: string; built: boolean; ms?: number }>;
