// ort_run.js: runs an ONNX model with onnxruntime-node on raw images and
// writes its outputs.
//   node ort_run.js ORT_DIR MODEL.onnx IMAGES.u8 N H W C OUT [NAMES]
// IMAGES.u8 holds N uint8 images (H, W, C); the model takes float32
// (batch, C, H, W) of pixel/255, fed in batches of 64.  Without NAMES the
// "logits" output goes to OUT; NAMES, a comma list of outputs (a
// segmentation model's logits,scores,mask), sends each to OUT.NAME.  Every
// file holds the output's raw little-endian elements (float32, or int64 for
// the mask) for the N images in order.
const fs = require('fs');
const [ortDir, model, imgPath, n, h, w, c, outPath, names] = process.argv.slice(2);
const ort = require(ortDir);
const N = +n, H = +h, W = +w, C = +c;
const outs = names ? names.split(',') : ['logits'];
const path = name => names ? outPath + '.' + name : outPath;
(async () => {
    const s = await ort.InferenceSession.create(model, {intraOpNumThreads: 1, graphOptimizationLevel: 'all'});
    const img = fs.readFileSync(imgPath);
    const fds = outs.map(name => fs.openSync(path(name), 'w'));
    for (let b0 = 0; b0 < N; b0 += 64) {
        const B = Math.min(64, N - b0);
        const x = new Float32Array(B * C * H * W);
        for (let b = 0; b < B; b++)
            for (let y = 0; y < H; y++)
                for (let xx = 0; xx < W; xx++)
                    for (let ch = 0; ch < C; ch++)
                        x[((b * C + ch) * H + y) * W + xx] = img[(((b0 + b) * H + y) * W + xx) * C + ch] / 255;
        const r = await s.run({input: new ort.Tensor('float32', x, [B, C, H, W])});
        outs.forEach((name, i) => {
            if (!r[name]) throw new Error('no output named ' + name);
            const d = r[name].data;
            fs.writeSync(fds[i], Buffer.from(d.buffer, d.byteOffset, d.byteLength));
        });
    }
    fds.forEach(fd => fs.closeSync(fd));
})().catch(e => { console.error('error: ' + model + ': ' + e.message); process.exit(1); });
