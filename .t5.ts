const V = 50259; const l = new Float32Array(V); let s=1; for (let i=0;i<V;i++){ s=(s*16807)%2147483647; l[i]= (s/2147483647-0.5)*14; }
const x = new Float64Array(V);
const LOG2E = 1.4426950408889634, LN2 = 0.6931471805599453;
const POW2_NEG = Float64Array.from({ length: 65 }, (_, k) => Math.pow(2, -k));
function e1(z: number) { const t = z * LOG2E; const n = Math.round(t); const g = (t - n) * LN2;
  const poly = 1 + g * (1 + g * (1 / 2 + g * (1 / 6 + g * (1 / 24 + g * (1 / 120 + g * (1 / 720 + g * (1 / 5040 + g / 40320)))))));
  return n >= 0 ? poly : POW2_NEG[-n]! * poly; }
function loopMath(){ x.set(l); let max=-Infinity; for (let i=0;i<V;i++) if (x[i]>max) max=x[i]; let sum=0; for (let i=0;i<V;i++){ const p=Math.exp(x[i]-max); x[i]=p; sum+=p;} return sum; }
function loopFast(){ x.set(l); let max=-Infinity; for (let i=0;i<V;i++) if (x[i]>max) max=x[i]; let sum=0; for (let i=0;i<V;i++){ const z = x[i]-max; const p= z < -40 ? 0 : e1(z); x[i]=p; sum+=p;} return sum; }
function loopInline(){ x.set(l); let max=-Infinity; for (let i=0;i<V;i++) if (x[i]>max) max=x[i]; let sum=0; for (let i=0;i<V;i++){ const z = x[i]-max; 
  const t = z * LOG2E; const n = Math.round(t); const g = (t - n) * LN2;
  const poly = 1 + g * (1 + g * (0.5 + g * (0.16666666666666666 + g * (0.041666666666666664 + g * (0.008333333333333333 + g * (0.001388888888888889 + g * (0.0001984126984126984 + g * 0.0000248015873015873)))))));
  const p = poly * POW2_NEG[-n]!; x[i]=p; sum+=p;} return sum; }
let chk=0;
for (const f of [loopMath, loopFast, loopInline]) { for (let i=0;i<300;i++) chk+=f(); const t=performance.now(); for (let i=0;i<2000;i++) chk+=f(); console.log(f.name, ((performance.now()-t)/2000).toFixed(4)); }
// accuracy
let worst=0; for (let z=-40; z<=0; z+=0.001) worst=Math.max(worst, Math.abs(e1(z)/Math.exp(z)-1)); console.log('rel err', worst);
