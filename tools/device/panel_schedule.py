#!/usr/bin/env python3
"""Host model (numpy, no GPU) of chol_panel_f64 in kernels/src/main/cuda/sparkprune.cu: the same slabs,
steps, tiles and flag waits, each thread block a generator resumed in random order at its waits (a
deadlock check), with G blocks (fewer than the slabs included); checks L against numpy.linalg.cholesky and
the diagonal blocks of X. Keep it in step with the kernel when its schedule changes.
Usage: python3 tools/device/panel_schedule.py
"""
import numpy as np
FB=64; CPB=8
def panel(n,p0,R,X,flags,info,G):
    pw=min(CPB*FB,n-p0); nb=(pw+FB-1)//FB; ns=(n-p0+FB-1)//FB
    g0=p0//FB
    colw=lambda i: min(FB,pw-FB*i); roww=lambda b: min(FB,n-p0-FB*b)
    def blk(b,i,r,c): return (slice(p0+FB*b,p0+FB*b+r), slice(p0+FB*i,p0+FB*i+c))
    def tile(Cb, cr, cc, acc, alpha, Ab, Bb, K, kv):
        # Cb,Ab,Bb = (matrix, rowstart, colstart)
        A=Ab[0][Ab[1]:Ab[1]+cr, Ab[2]:Ab[2]+kv]; B=Bb[0][Bb[1]:Bb[1]+cc, Bb[2]:Bb[2]+kv]
        v=alpha*(A@B.T)
        C=Cb[0][Cb[1]:Cb[1]+cr, Cb[2]:Cb[2]+cc]
        if acc: v=v+C
        Cb[0][Cb[1]:Cb[1]+cr, Cb[2]:Cb[2]+cc]=v
    def at(M,b,i): return (M,p0+FB*b,p0+FB*i)
    def potf2(kb,b):
        r0=p0+FB*b
        a=np.tril(R[r0:r0+kb,r0:r0+kb])
        a=a+np.tril(a,-1).T
        try:
            L=np.linalg.cholesky(a)
        except np.linalg.LinAlgError:
            info[0]=max(info[0],1); L=np.eye(kb)
        R[r0:r0+kb,r0:r0+kb]=L; X[r0:r0+kb,r0:r0+kb]=np.linalg.inv(L)
    def cta(me):
        def wait(k):
            while flags[2*g0+k]==0: yield
        if me==0:
            potf2(colw(0),0); flags[2*g0]=1; flags[2*g0+1]=1
        i=0
        while i+1<ns and i<nb:
            first= me if me>i else me+G*((i+1-me+G-1)//G)
            if first>=ns: break
            wi=colw(i)
            yield from wait(2*i)
            for b in range(first,ns,G):
                diag = b==i+1 and b<nb
                if i>0:
                    tile(at(R,b,i),roww(b),wi,1,-1.0,at(R,b,0),at(R,i,0),FB*i,FB*i)
                if diag:
                    yield from wait(2*i+1)
                    tile(at(R,b,i),roww(b),wi,0,1.0,at(R,b,i),at(X,i,i),FB,wi)
                    flags[2*(g0+b)]=1
                    tile(at(R,b,b),roww(b),roww(b),1,-1.0,at(R,b,i),at(R,b,i),FB,wi)
                    potf2(roww(b),b); flags[2*(g0+b)+1]=1
            yield from wait(2*i+1)
            for b in range(first,ns,G):
                if b==i+1 and b<nb: continue
                tile(at(R,b,i),roww(b),wi,0,1.0,at(R,b,i),at(X,i,i),FB,wi)
                if b<nb: tile(at(R,b,b),roww(b),roww(b),1,-1.0,at(R,b,i),at(R,b,i),FB,wi)
            i+=1
    G=min(G,ns)
    gens=[cta(c) for c in range(G)]
    rng=np.random.default_rng(p0)
    alive=list(range(G)); spins=0
    while alive:
        c=alive[rng.integers(len(alive))]
        try: next(gens[c]); spins+=1
        except StopIteration: alive.remove(c)
        assert spins<10**6, "deadlock"
def chol(n,M,G):
    R=np.tril(M).copy(); X=np.zeros((n,n)); flags=np.zeros(2*((n+FB-1)//FB),int); info=[0]
    for p0 in range(0,n,512):
        pe=min(n,p0+512)
        panel(n,p0,R,X,flags,info,G)
        if pe<n:
            L21=R[pe:,p0:pe]; R[pe:,pe:]-=np.tril(L21@L21.T)
    return R,X,info[0]
rng=np.random.default_rng(1)
for n,G in [(130,300),(1000,300),(1000,3),(1100,1),(1601,7),(1601,300),(64,5),(63,5),(1,2)]:
    L0=np.tril(rng.standard_normal((n,n))*0.3/np.sqrt(n),-1)+np.diag(rng.uniform(1,2,n))
    M=L0@L0.T
    R,X,inf=chol(n,M,G)
    L=np.tril(R)
    e=np.abs(L-np.linalg.cholesky(M)).max()
    xe=max(np.abs(X[b:b+64,b:b+64]@L[b:b+64,b:b+64]-np.eye(min(64,n-b))).max() for b in range(0,n,64))
    print(n,G,inf,e,xe, np.abs(np.triu(R,1)).max())
    assert inf==0 and e<1e-12 and xe<1e-12 and np.abs(np.triu(R,1)).max()==0, (n,G)
print("schedule model ok")
