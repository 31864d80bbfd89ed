export { PosixLogStore, TileCache, type PendingWrite } from './posix.js';
export { Journal, storageError, type JournalBatch } from './journal.js';
export { VaultDb, ROLES, type Role, type LogRow, type PrincipalRow } from './db.js';
export { writeFileAtomicSync, writeFileDurable, fsyncDirs } from './atomic.js';
