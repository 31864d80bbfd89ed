export { WitnessStore, type OriginState, type WitnessConfigFile } from './store.js';
export { Witness, startWitnessServer, MAX_BODY, type WitnessAnswer, type WitnessServer, type WitnessServerOptions } from './server.js';
export { WitnessSet, witnessSetFromFlags, parseWitnessArg, parseWitnessesFile, postAddCheckpoint, type WitnessSpec, type CosignRequest, type CosignResult, type WitnessOutcome, type IncidentKind } from './client.js';
