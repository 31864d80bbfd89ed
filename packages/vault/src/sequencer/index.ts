export { LogSequencer, type PublishedCheckpoint, type AppendResult, type SequencerOptions } from './log-sequencer.js';
