// The console is served by the scootfleet binary under /console/.
import { defineConfig } from 'vite';

export default defineConfig({
  base: '/console/',
  build: { outDir: 'dist', emptyOutDir: true, chunkSizeWarningLimit: 1500 },
  server: { proxy: { '/v1': 'http://127.0.0.1:8080', '/console/config.json': 'http://127.0.0.1:8080' } },
});
