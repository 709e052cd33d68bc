"""A FUSE file system of one file, `record`, whose close(2) fails: FUSE's flush
answers ESTALE, as NFS and GlusterFS clients do for a file another client
just replaced. statfs(2) sees it as FUSE, as it sees GlusterFS and ceph-fuse
mounts. Run: /usr/bin/python3 close-fails-fs.py MOUNTPOINT"""
import errno, os, stat, sys, time
import pyfuse3, trio

DATA = b'{"owner":"peer","beat":7}\n'
FILE = 2

class CloseFails(pyfuse3.Operations):
    def attrs(self, inode):
        e = pyfuse3.EntryAttributes()
        if inode == pyfuse3.ROOT_INODE:
            e.st_mode, e.st_size, e.st_nlink = stat.S_IFDIR | 0o755, 0, 2
        elif inode == FILE:
            e.st_mode, e.st_size, e.st_nlink = stat.S_IFREG | 0o644, len(DATA), 1
        else:
            raise pyfuse3.FUSEError(errno.ENOENT)
        now = time.time_ns()
        e.st_ino, e.st_uid, e.st_gid = inode, os.getuid(), os.getgid()
        e.st_atime_ns = e.st_mtime_ns = e.st_ctime_ns = now
        e.attr_timeout = e.entry_timeout = 0
        return e

    async def getattr(self, inode, ctx=None):
        return self.attrs(inode)

    async def lookup(self, parent, name, ctx=None):
        if parent == pyfuse3.ROOT_INODE and name == b'record':
            return self.attrs(FILE)
        raise pyfuse3.FUSEError(errno.ENOENT)

    async def opendir(self, inode, ctx):
        return inode

    async def readdir(self, fh, start_id, token):
        if start_id == 0:
            pyfuse3.readdir_reply(token, b'record', self.attrs(FILE), 1)

    async def open(self, inode, flags, ctx):
        if inode != FILE:
            raise pyfuse3.FUSEError(errno.EISDIR)
        return pyfuse3.FileInfo(fh=inode, direct_io=True)

    async def read(self, fh, off, size):
        return DATA[off:off + size]

    async def flush(self, fh):
        raise pyfuse3.FUSEError(errno.ESTALE)

    async def release(self, fh):
        pass

    async def statfs(self, ctx):
        # Answered as a real client does (statfs(2) on a mount that cannot is no test of anything).
        s = pyfuse3.StatvfsData()
        s.f_bsize = s.f_frsize = 4096
        s.f_namemax = 255
        return s

async def serve():
    # Unmount and go when the test that started us is gone, even killed.
    parent = os.getppid()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(pyfuse3.main)
        while os.getppid() == parent:
            await trio.sleep(0.2)
        pyfuse3.terminate()

def main(mountpoint):
    pyfuse3.init(CloseFails(), mountpoint, ['fsname=closefail'])
    try:
        trio.run(serve)
    finally:
        pyfuse3.close(unmount=True)

if __name__ == '__main__':
    main(sys.argv[1])
