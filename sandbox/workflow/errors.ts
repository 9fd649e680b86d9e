// Engine errors carry the HTTP status the gateway answers with, so the route module can map
// them one-to-one onto Cordum's quirky codes (e.g. 400 for an unknown run on approve).
export class EngineError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'EngineError';
  }
}

export const runBusy = () => new EngineError(409, 'workflow run is busy, retry');
