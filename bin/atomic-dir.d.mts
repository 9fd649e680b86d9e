// Types of bin/atomic-dir.mjs.
export declare function makeDirAtomically(dest: string, isComplete: () => boolean, make: (tmp: string) => Promise<void>): Promise<void>;
