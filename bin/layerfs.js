#!/usr/bin/env node
import '../dist/bundle/layerfs.js';
