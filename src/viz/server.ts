/**
 * A small static file server for the visualizer (node:http, no framework),
 * bound to the loopback interface only. It serves the built app, each
 * shipped pretrained model under /models/<id>/ straight from pretrained/
 * (the build does not copy the weights), and optionally one extra model
 * directory under /models/custom/, which then comes first in /models.json
 * so the page opens it, with its own test images when given.
 */
import { createReadStream, existsSync, readFileSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, normalize, resolve, sep } from 'node:path';
import { shippedModels, type SampleFiles, type VizModelEntry } from './build.js';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.wasm': 'application/wasm',
  '.bin': 'application/octet-stream',
  '.gz': 'application/gzip',
  '.onnx': 'application/octet-stream',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
  '.txt': 'text/plain; charset=utf-8',
};

export interface VizServerOptions {
  /** The built app (see build.ts). */
  root: string;
  /** A model directory to serve as the default model. */
  modelDir?: string;
  modelLabel?: string;
  /** That model's own test images, served as models/custom/samples.json and .bin (see pickSamples). */
  modelSamples?: SampleFiles;
  /** 0 (the default) lets the system pick a free port. */
  port?: number;
}

export interface VizServer {
  url: string;
  port: number;
  server: Server;
  close(): Promise<void>;
}

export const CUSTOM_MODEL_ID = 'custom';

/** The file under `base` that a URL path names, or null when it escapes `base`. */
function safeJoin(base: string, urlPath: string): string | null {
  let decoded: string;
  try {
    decoded = decodeURIComponent(urlPath);
  } catch {
    return null;
  }
  if (decoded.includes('\0')) return null;
  const p = resolve(base, `.${sep}${normalize(decoded)}`);
  return p === base || p.startsWith(base + sep) ? p : null;
}

function send(res: ServerResponse, status: number, body: string, type = 'text/plain; charset=utf-8'): void {
  res.writeHead(status, { 'Content-Type': type, 'Cache-Control': 'no-cache' });
  res.end(body);
}

/**
 * A file's validator: its size and modification time. The browser keeps
 * what it fetched and asks again with If-None-Match; an unchanged file is a
 * 304 without a body, so switching back to a model does not download its
 * weights again, and a rebuilt or retrained file is fetched anew.
 */
function etagOf(size: number, mtimeMs: number): string {
  return `"${size.toString(36)}-${Math.floor(mtimeMs).toString(36)}"`;
}

function sendFile(req: IncomingMessage, res: ServerResponse, path: string | null): void {
  const st = path && existsSync(path) ? statSync(path) : null;
  if (!path || !st?.isFile()) {
    send(res, 404, 'not found\n');
    return;
  }
  const etag = etagOf(st.size, st.mtimeMs);
  const headers = { 'Content-Type': TYPES[extname(path).toLowerCase()] ?? 'application/octet-stream', 'Cache-Control': 'no-cache', ETag: etag };
  if (req.headers['if-none-match']?.split(/\s*,\s*/).includes(etag)) {
    res.writeHead(304, headers);
    res.end();
    return;
  }
  const size = st.size;
  res.writeHead(200, { ...headers, 'Content-Length': size });
  if (req.method === 'HEAD') {
    res.end();
    return;
  }
  createReadStream(path).pipe(res);
}

export function startVizServer(options: VizServerOptions): Promise<VizServer> {
  const root = resolve(options.root);
  const modelDir = options.modelDir ? resolve(options.modelDir) : undefined;
  const modelsJson = (): string => {
    const built = existsSync(join(root, 'models.json'))
      ? (JSON.parse(readFileSync(join(root, 'models.json'), 'utf8')) as { models: VizModelEntry[] } & Record<string, unknown>)
      : { models: [] as VizModelEntry[] };
    const custom: VizModelEntry = {
      id: CUSTOM_MODEL_ID,
      label: options.modelLabel ?? 'model given with --model',
      url: `models/${CUSTOM_MODEL_ID}/model.json`,
      ...(options.modelSamples ? { samples: `models/${CUSTOM_MODEL_ID}/samples` } : {}),
    };
    // The build's list (sample sets, what the Train panel offers) with the --model first.
    return JSON.stringify({ ...built, models: modelDir ? [custom, ...built.models] : built.models });
  };
  const shippedDirs = shippedModels().map((m) => ({ prefix: `/models/${m.entry.id}/`, dir: resolve(m.dir) }));
  const server = createServer((req, res) => {
    // Cross-origin isolation lets tfjs's wasm backend use threads; every
    // resource comes from this origin, so nothing else is affected.
    res.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
    res.setHeader('Cross-Origin-Embedder-Policy', 'require-corp');
    res.setHeader('X-Content-Type-Options', 'nosniff');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      send(res, 405, 'method not allowed\n');
      return;
    }
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    if (path === '/models.json') {
      send(res, 200, modelsJson(), TYPES['.json']);
      return;
    }
    const customPrefix = `/models/${CUSTOM_MODEL_ID}/`;
    const samples = options.modelSamples;
    if (modelDir && samples && (path === `${customPrefix}samples.json` || path === `${customPrefix}samples.bin`)) {
      const json = path.endsWith('.json');
      res.writeHead(200, { 'Content-Type': json ? TYPES['.json'] : TYPES['.bin'], 'Cache-Control': 'no-cache' });
      res.end(req.method === 'HEAD' ? undefined : json ? samples.json : samples.bin);
      return;
    }
    if (modelDir && path.startsWith(customPrefix)) {
      sendFile(req, res, safeJoin(modelDir, path.slice(customPrefix.length)));
      return;
    }
    const shipped = shippedDirs.find((m) => path.startsWith(m.prefix));
    const inRoot = safeJoin(root, path);
    if (shipped && !(inRoot && existsSync(inRoot))) {
      sendFile(req, res, safeJoin(shipped.dir, path.slice(shipped.prefix.length)));
      return;
    }
    sendFile(req, res, safeJoin(root, path.endsWith('/') ? `${path}index.html` : path));
  });
  return new Promise((resolvePromise, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => {
      server.off('error', reject);
      const port = (server.address() as AddressInfo).port;
      resolvePromise({
        url: `http://127.0.0.1:${port}/`,
        port,
        server,
        close: () =>
          new Promise<void>((r) => {
            server.closeAllConnections();
            server.close(() => r());
          }),
      });
    });
  });
}
