const V = 50259; const l = new Float32Array(V); let s=1; for (let i=0;i<V;i++){ s=(s*16807)%2147483647; l[i]= (s/2147483647-0.5)*14; }
const x = new Float64Array(V);
function expLoop(){ x.set(l); let max=-Infinity; for (let i=0;i<V;i++) if (x[i]>max) max=x[i]; let sum=0; for (let i=0;i<V;i++){ const p=Math.exp(x[i]-max); x[i]=p; sum+=p;} return sum; }
function expLoopF32(){ let max=-Infinity; for (let i=0;i<V;i++) if (l[i]>max) max=l[i]; let sum=0; for (let i=0;i<V;i++){ const p=Math.exp(l[i]-max); x[i]=p; sum+=p;} return sum; }
function argmaxOnly(){ let b=0; for (let i=1;i<V;i++) if (l[i]>l[b]) b=i; return b; }
for (const f of [expLoop, expLoopF32, argmaxOnly]) { for (let i=0;i<300;i++) f(); const t=performance.now(); for (let i=0;i<2000;i++) f(); console.log(f.name, ((performance.now()-t)/2000).toFixed(4)); }
