// Where an object came from: the manifest file and line of its document, remembered by the loader
// for each object it returns. Findings point at that line, or at the line of a script inside the
// object, so a SARIF viewer (GitHub code scanning) can show the defect in place.
import type { KubeObject } from './objects.js';

export interface SourceFile {
  /** Path as shown to users and written to SARIF (relative to the working directory when inside it). */
  uri: string;
  lines: string[];
}

export interface SourceRef {
  file: SourceFile;
  /** 1-based first and last line of the object's document. */
  line: number;
  endLine: number;
}

/** A place a result points at: an object (live) and, statically, its file and line. */
export interface Location {
  /** `Kind/name` of the object. */
  object?: string;
  uri?: string;
  line?: number;
  /** The script or config line quoted as evidence. */
  snippet?: string;
}

const sources = new WeakMap<object, SourceRef>();

export function setSource(obj: KubeObject, ref: SourceRef): void {
  sources.set(obj, ref);
}

export function sourceOf(obj: KubeObject): SourceRef | undefined {
  return sources.get(obj);
}

/** Copy the source of `from` onto `to` (objects rebuilt from others keep their origin). */
export function inheritSource(to: KubeObject, from: KubeObject): void {
  const s = sources.get(from);
  if (s) sources.set(to, s);
}

/**
 * Location of an object, or of a snippet (a script line) inside it: the first line of the
 * object's document that contains the snippet's text, else the object's own line.
 */
export function locate(obj: KubeObject, snippet?: string): Location {
  const object = `${obj.kind}/${obj.metadata.name}`;
  const src = sources.get(obj);
  if (!src) return { object, ...(snippet ? { snippet } : {}) };
  let line = src.line;
  const needle = snippet?.trim();
  if (needle) {
    for (let i = src.line; i <= Math.min(src.endLine, src.file.lines.length); i++) {
      if (src.file.lines[i - 1].includes(needle)) {
        line = i;
        break;
      }
    }
  }
  return { object, uri: src.file.uri, line, ...(snippet ? { snippet } : {}) };
}
