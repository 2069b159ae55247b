#!/usr/bin/env node
// containers/storage's overlay mount_program (docs/mount-program.md).
import { runOverlayProgram } from '../dist/bundle/layerfs-overlay.js';

await runOverlayProgram();
