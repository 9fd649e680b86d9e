// Prometheus text exposition post-processing shared by the gateway and scheduler /metrics handlers.
// The Go client never prints a labelled counter or histogram family until it has a sample, while
// prom-client prints HELP/TYPE lines for every registered metric. Dropping the empty families makes
// "is the family present?" checks behave as they do against a real Cordum.

/** Remove every metric family (its # HELP / # TYPE lines) that has no sample line. */
export function omitEmptyFamilies(text: string): string {
  const lines = text.split('\n');
  const out: string[] = [];
  let block: string[] = [];
  let blockHasSample = false;
  let blockName: string | undefined;
  const flush = () => {
    if (blockHasSample) out.push(...block);
    block = [];
    blockHasSample = false;
    blockName = undefined;
  };
  for (const line of lines) {
    if (line === '') continue;
    const meta = /^# (HELP|TYPE) (\S+)/.exec(line);
    if (meta) {
      // A new family starts at the first comment line naming another metric.
      if (meta[2] !== blockName) flush();
      blockName = meta[2];
      block.push(line);
      continue;
    }
    if (line.startsWith('#')) {
      block.push(line);
      continue;
    }
    block.push(line);
    blockHasSample = true;
  }
  flush();
  return out.length ? `${out.join('\n')}\n` : '';
}
