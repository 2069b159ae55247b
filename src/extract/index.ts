/**
 * Layer extraction: the public surface used by the store and by `layerfs check`.
 *
 *   const result = await extractLayer(blobStream, tmpDir, { expectedDiffId, indexPath });
 *   for await (const record of readLayerIndex(indexPath)) ...
 *   const report = await verifyLayerAgainstIndex(dir, indexPath, { content: true });
 */
export { extractLayer, type ExtractOptions, type ExtractResult } from './extract-layer.js';
export { LayerError, isLayerError, type LayerErrorCode } from './errors.js';
export {
  readLayerIndex,
  readLayerIndexHeader,
  type IndexEntryType,
  type LayerIndexHeader,
  type LayerIndexRecord,
} from './layer-index.js';
export { verifyLayerAgainstIndex, type VerifyOptions, type VerifyProblem, type VerifyReport } from './verify-layer.js';
export type { Compression } from './decompress.js';
export type { Sha256Digest } from './digest-stream.js';
