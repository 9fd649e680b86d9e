import { parseRunbook } from './helpers/catalog.js';
const r = parseRunbook('runbooks/readiness.md');
console.log(r.name, r.scenarios, r.needs, r.timeBudgetMs);
