export { LogSequencer, type PublishedCheckpoint, type AppendResult, type SequencerOptions } from './log-sequencer.js';
export type { LogSequencerApi, SharedSequencerOptions } from './api.js';
// The shared sequencer loads the PostgreSQL and S3 clients: import it from
// './shared-sequencer.js' where it is used (a dynamic import keeps single-node vaults lean).
export type { SharedLogSequencer } from './shared-sequencer.js';
