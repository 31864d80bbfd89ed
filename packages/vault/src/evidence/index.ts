/**
 * Evidence bundles (custody-evidence/v1, docs/EVIDENCE.md): building them from the log
 * (`prepareExport` + `writeExport`) and reading their zip strictly (`readZip`). Checking the
 * files is @custody/verify's `verifyBundle`.
 */
export { prepareExport, writeExport, MAX_EXPORT_ENTRIES, type ExportRef, type ExportRequest, type PreparedExport, type ExportSummary } from './bundle.js';
export { ZipWriter, type ZipSink } from './zip.js';
export { readZip, type ReadZipResult } from './unzip.js';
export { readmeText, type ReadmeFacts } from './readme.js';
