import { Sampler } from './workers/chat/sampler.js';
const V = 50259; const l = new Float32Array(V); let s=1; for (let i=0;i<V;i++){ s=(s*16807)%2147483647; l[i]= (s/2147483647-0.5)*14; }
for (const params of [{temperature:0},{temperature:1},{temperature:0.8, topP:0.95},{temperature:0.8, topK:50}, {temperature:1, repetitionPenalty:1.1}]) {
  const sm = new Sampler({seed:1, ...params}); const seen = new Set([1,2,3,4,5]);
  for (let i=0;i<200;i++) sm.sample(l, seen);
  const t=performance.now(); for (let i=0;i<1000;i++) sm.sample(l, seen); console.log(JSON.stringify(params), ((performance.now()-t)/1000).toFixed(3),'ms');
}
