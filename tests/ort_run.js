// ort_run.js: runs an ONNX model with onnxruntime-node on raw images and
// writes the logits.  node ort_run.js ORT_DIR MODEL.onnx IMAGES.u8 N H W C OUT.f32
// IMAGES.u8 holds N uint8 images (H, W, C); the model takes float32
// (batch, C, H, W) of pixel/255, fed in batches of 64.
const fs = require('fs');
const [ortDir, model, imgPath, n, h, w, c, outPath] = process.argv.slice(2);
const ort = require(ortDir);
const N = +n, H = +h, W = +w, C = +c;
(async () => {
    const s = await ort.InferenceSession.create(model, {intraOpNumThreads: 1, graphOptimizationLevel: 'all'});
    const img = fs.readFileSync(imgPath);
    const chunks = [];
    for (let b0 = 0; b0 < N; b0 += 64) {
        const B = Math.min(64, N - b0);
        const x = new Float32Array(B * C * H * W);
        for (let b = 0; b < B; b++)
            for (let y = 0; y < H; y++)
                for (let xx = 0; xx < W; xx++)
                    for (let ch = 0; ch < C; ch++)
                        x[((b * C + ch) * H + y) * W + xx] = img[(((b0 + b) * H + y) * W + xx) * C + ch] / 255;
        const r = await s.run({input: new ort.Tensor('float32', x, [B, C, H, W])});
        chunks.push(Buffer.from(r.logits.data.buffer, r.logits.data.byteOffset, r.logits.data.byteLength));
    }
    fs.writeFileSync(outPath, Buffer.concat(chunks));
})().catch(e => { console.error('error: ' + model + ': ' + e.message); process.exit(1); });
