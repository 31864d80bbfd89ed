import type { FastifyInstance } from 'fastify';
import type { Vault } from '../vault.js';
import { SearchIndex, type SearchIndexOptions } from './search-index.js';

export { SearchIndex, type SearchIndexOptions } from './search-index.js';
export { SearchReader, TOTAL_CAP, MAX_LIMIT, DEFAULT_LIMIT, type Hit, type SearchResult, type SearchOptions, type IngestBucket, type TimeInput } from './reader.js';
export { parseQuery, parseTimeBound, FIELDS, MAX_QUERY_LENGTH, type QueryNode, type FieldName } from './query.js';
export { reindexDataDir, type ReindexReport } from './reindex.js';
export { deriveRow } from './derive.js';
export { IndexWriter, openSearchDb, createSchema, prepareSearchFile, removeSearchFiles, SEARCH_DB, SCHEMA_VERSION, type IndexRow } from './store.js';
export { QueryRunner, type Order } from './engine.js';

/**
 * Opens the vault's search index (following its logs) and serves GET /v1/search and
 * GET /v1/stats/ingest on `app`; the index closes with the app.
 */
export async function attachSearch(app: FastifyInstance, vault: Vault, opts: SearchIndexOptions = {}): Promise<SearchIndex> {
  const search = SearchIndex.open(vault, opts);
  const { searchRoutes } = await import('../server/search.js');
  await app.register(searchRoutes, { vault, search });
  app.addHook('onClose', async () => search.close());
  return search;
}
