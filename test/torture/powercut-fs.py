#!/usr/bin/python3
"""
powercut-fs: a FUSE file system that forgets what was not made durable, for
`npm run torture` (scenario 9, power cuts). The role of LazyFS (the FUSE file
system Jepsen uses), written for this project on pyfuse3: every operation
goes through at once to a backing folder (the live state), and a second
folder holds what a power cut would leave (the durable image), updated only
when a program asks for durability:

  metadata  create, mkdir, rename, link, unlink, rmdir, truncate, chmod are
            kept in order in a journal; an fsync of any file or folder
            commits the whole journal to the image, as a journaling file
            system (ext4, xfs) commits every earlier metadata change with one
            transaction. So a rename is atomic: after a cut a file is under
            its old name or its new one, never both, never neither.
  data      a file's bytes reach the image only when that file is fsynced.
            A file created, written and renamed but never fsynced comes back
            empty, as LazyFS and delayed allocation make it.

Not modelled: torn writes inside a page, data reaching the disk without an
fsync (a cut here always loses all of it: the worst case), and a commit of
the journal without any fsync (ext4 commits every 5 s by itself).

A cut is the harness's: it kills the programs and this file system, makes
the backing folder a copy of the image, and mounts again.

  POWERCUT_BACKING=dir POWERCUT_DURABLE=dir python3 powercut-fs.py MOUNTPOINT
"""
import errno
import os
import stat as stat_m
import sys

import pyfuse3
import trio

BACKING = os.environ['POWERCUT_BACKING']
DURABLE = os.environ['POWERCUT_DURABLE']


class PowercutFS(pyfuse3.Operations):
    enable_writeback_cache = False

    def __init__(self):
        super().__init__()
        self.journal = []
        # FUSE inode -> set of paths relative to the root ('' is the root).
        self.paths = {pyfuse3.ROOT_INODE: {''}}
        self.root_ino = os.lstat(BACKING).st_ino
        self.fds = {}  # fh -> (fd, inode)
        # Open directories: fh -> (inode, names listed at the first read). A
        # listing taken once per open, so that entries renamed away while a
        # program reads the directory do not make it skip others (POSIX: an
        # entry present throughout a read is returned once).
        self.dirs = {}
        self.next_dir = 1

    # ------------------------------------------------------------ paths

    def ino_of(self, st):
        return pyfuse3.ROOT_INODE if st.st_ino == self.root_ino else st.st_ino

    def path_of(self, inode):
        paths = self.paths.get(inode)
        if not paths:
            raise pyfuse3.FUSEError(errno.ENOENT)
        return next(iter(paths))

    def child(self, parent, name):
        base = self.path_of(parent)
        name = os.fsdecode(name)
        return name if base == '' else base + '/' + name

    def live(self, rel):
        return os.path.join(BACKING, rel) if rel else BACKING

    def image(self, rel):
        return os.path.join(DURABLE, rel) if rel else DURABLE

    def remember(self, rel, st):
        ino = self.ino_of(st)
        self.paths.setdefault(ino, set()).add(rel)
        return ino

    def forget_path(self, rel):
        for ino, paths in list(self.paths.items()):
            if rel in paths:
                paths.discard(rel)

    def move_paths(self, old, new):
        for ino, paths in self.paths.items():
            moved = set()
            for p in paths:
                if p == old:
                    moved.add(new)
                elif p.startswith(old + '/'):
                    moved.add(new + p[len(old):])
                else:
                    moved.add(p)
            paths.clear()
            paths.update(moved)

    def attrs(self, st):
        a = pyfuse3.EntryAttributes()
        a.st_ino = self.ino_of(st)
        a.generation = 0
        a.entry_timeout = 0
        a.attr_timeout = 0
        a.st_mode = st.st_mode
        a.st_nlink = st.st_nlink
        a.st_uid = st.st_uid
        a.st_gid = st.st_gid
        a.st_rdev = st.st_rdev
        a.st_size = st.st_size
        a.st_blksize = 4096
        a.st_blocks = st.st_blocks
        a.st_atime_ns = st.st_atime_ns
        a.st_mtime_ns = st.st_mtime_ns
        a.st_ctime_ns = st.st_ctime_ns
        return a

    # ------------------------------------------------------------ durability

    def commit(self):
        """Applies the journal to the image, in order: the metadata is durable."""
        ops, self.journal = self.journal, []
        for op in ops:
            try:
                kind = op[0]
                if kind == 'mkdir':
                    os.mkdir(self.image(op[1]), op[2])
                elif kind == 'rmdir':
                    os.rmdir(self.image(op[1]))
                elif kind == 'create':
                    os.close(os.open(self.image(op[1]), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, op[2]))
                elif kind == 'unlink':
                    os.unlink(self.image(op[1]))
                elif kind == 'rename':
                    os.rename(self.image(op[1]), self.image(op[2]))
                elif kind == 'link':
                    os.link(self.image(op[1]), self.image(op[2]))
                elif kind == 'symlink':
                    os.symlink(op[1], self.image(op[2]))
                elif kind == 'truncate':
                    os.truncate(self.image(op[1]), op[2])
                elif kind == 'chmod':
                    os.chmod(self.image(op[1]), op[2])
            except OSError as e:
                # The image mirrors the live names as of the last commit, so
                # this should not happen; if it does, the image stays as it was.
                print('powercut-fs: commit of %r failed: %s' % (op, e), file=sys.stderr)

    # ------------------------------------------------------------ operations

    async def lookup(self, parent, name, ctx=None):
        rel = self.child(parent, name)
        try:
            st = os.lstat(self.live(rel))
        except OSError as e:
            raise pyfuse3.FUSEError(e.errno)
        self.remember(rel, st)
        return self.attrs(st)

    async def getattr(self, inode, ctx=None):
        try:
            return self.attrs(os.lstat(self.live(self.path_of(inode))))
        except OSError as e:
            raise pyfuse3.FUSEError(e.errno)

    async def setattr(self, inode, attr, fields, fh, ctx):
        rel = self.path_of(inode)
        try:
            if fields.update_size:
                if fh is not None:
                    os.ftruncate(self.fds[fh][0], attr.st_size)
                else:
                    os.truncate(self.live(rel), attr.st_size)
                self.journal.append(('truncate', rel, attr.st_size))
            if fields.update_mode:
                os.chmod(self.live(rel), stat_m.S_IMODE(attr.st_mode))
                self.journal.append(('chmod', rel, stat_m.S_IMODE(attr.st_mode)))
            if fields.update_uid or fields.update_gid:
                os.lchown(self.live(rel), attr.st_uid if fields.update_uid else -1, attr.st_gid if fields.update_gid else -1)
            if fields.update_atime or fields.update_mtime:
                st = os.lstat(self.live(rel))
                os.utime(self.live(rel), ns=(attr.st_atime_ns if fields.update_atime else st.st_atime_ns, attr.st_mtime_ns if fields.update_mtime else st.st_mtime_ns), follow_symlinks=False)
        except OSError as e:
            raise pyfuse3.FUSEError(e.errno)
        return await self.getattr(inode)

    async def readlink(self, inode, ctx):
        return os.fsencode(os.readlink(self.live(self.path_of(inode))))

    async def opendir(self, inode, ctx):
        fh = self.next_dir
        self.next_dir += 1
        self.dirs[fh] = (inode, None)
        return fh

    async def readdir(self, fh, start_id, token):
        inode, names = self.dirs[fh]
        rel = self.path_of(inode)
        if names is None or start_id == 0:
            try:
                names = sorted(os.listdir(self.live(rel)))
            except OSError as e:
                raise pyfuse3.FUSEError(e.errno)
            self.dirs[fh] = (inode, names)
        for i, name in enumerate(names[start_id:], start_id):
            crel = name if rel == '' else rel + '/' + name
            try:
                st = os.lstat(self.live(crel))
            except OSError:
                continue
            self.remember(crel, st)
            if not pyfuse3.readdir_reply(token, os.fsencode(name), self.attrs(st), i + 1):
                break

    async def releasedir(self, fh):
        self.dirs.pop(fh, None)

    async def fsyncdir(self, fh, datasync):
        self.commit()

    async def mkdir(self, parent, name, mode, ctx):
        rel = self.child(parent, name)
        try:
            os.mkdir(self.live(rel), mode)
            st = os.lstat(self.live(rel))
        except OSError as e:
            raise pyfuse3.FUSEError(e.errno)
        self.journal.append(('mkdir', rel, stat_m.S_IMODE(mode)))
        self.remember(rel, st)
        return self.attrs(st)

    async def rmdir(self, parent, name, ctx):
        rel = self.child(parent, name)
        try:
            os.rmdir(self.live(rel))
        except OSError as e:
            raise pyfuse3.FUSEError(e.errno)
        self.journal.append(('rmdir', rel))
        self.forget_path(rel)

    async def unlink(self, parent, name, ctx):
        rel = self.child(parent, name)
        try:
            os.unlink(self.live(rel))
        except OSError as e:
            raise pyfuse3.FUSEError(e.errno)
        self.journal.append(('unlink', rel))
        self.forget_path(rel)

    async def rename(self, parent_old, name_old, parent_new, name_new, flags, ctx):
        if flags != 0:
            raise pyfuse3.FUSEError(errno.EINVAL)
        old = self.child(parent_old, name_old)
        new = self.child(parent_new, name_new)
        try:
            os.rename(self.live(old), self.live(new))
        except OSError as e:
            raise pyfuse3.FUSEError(e.errno)
        self.journal.append(('rename', old, new))
        self.forget_path(new)
        self.move_paths(old, new)

    async def link(self, inode, new_parent, new_name, ctx):
        src = self.path_of(inode)
        rel = self.child(new_parent, new_name)
        try:
            os.link(self.live(src), self.live(rel))
            st = os.lstat(self.live(rel))
        except OSError as e:
            raise pyfuse3.FUSEError(e.errno)
        self.journal.append(('link', src, rel))
        self.remember(rel, st)
        return self.attrs(st)

    async def symlink(self, parent, name, target, ctx):
        rel = self.child(parent, name)
        try:
            os.symlink(os.fsdecode(target), self.live(rel))
            st = os.lstat(self.live(rel))
        except OSError as e:
            raise pyfuse3.FUSEError(e.errno)
        self.journal.append(('symlink', os.fsdecode(target), rel))
        self.remember(rel, st)
        return self.attrs(st)

    async def open(self, inode, flags, ctx):
        rel = self.path_of(inode)
        try:
            fd = os.open(self.live(rel), flags & ~os.O_CREAT)
        except OSError as e:
            raise pyfuse3.FUSEError(e.errno)
        if flags & os.O_TRUNC:
            self.journal.append(('truncate', rel, 0))
        self.fds[fd] = (fd, inode)
        return pyfuse3.FileInfo(fh=fd)

    async def create(self, parent, name, mode, flags, ctx):
        rel = self.child(parent, name)
        try:
            fd = os.open(self.live(rel), flags | os.O_CREAT, mode)
            st = os.fstat(fd)
        except OSError as e:
            raise pyfuse3.FUSEError(e.errno)
        self.journal.append(('create', rel, stat_m.S_IMODE(mode)))
        inode = self.remember(rel, st)
        self.fds[fd] = (fd, inode)
        return (pyfuse3.FileInfo(fh=fd), self.attrs(st))

    async def read(self, fh, off, size):
        return os.pread(self.fds[fh][0], size, off)

    async def write(self, fh, off, buf):
        return os.pwrite(self.fds[fh][0], buf, off)

    async def flush(self, fh):
        pass

    async def release(self, fh):
        fd, _ = self.fds.pop(fh)
        os.close(fd)

    async def fsync(self, fh, datasync):
        self.commit()
        fd, inode = self.fds[fh]
        st = os.fstat(fd)
        # Read through a descriptor of its own: this one may be write-only.
        rfd = os.open('/proc/self/fd/%d' % fd, os.O_RDONLY)
        try:
            data = os.pread(rfd, st.st_size, 0) if st.st_size > 0 else b''
        finally:
            os.close(rfd)
        # Its durable bytes are its bytes now, under whichever name the image has for it.
        for rel in self.paths.get(inode, ()):
            try:
                out = os.open(self.image(rel), os.O_WRONLY | os.O_TRUNC)
            except OSError:
                continue
            try:
                os.write(out, data)
            finally:
                os.close(out)
            os.utime(self.image(rel), ns=(st.st_atime_ns, st.st_mtime_ns))
            break

    async def statfs(self, ctx):
        s = os.statvfs(BACKING)
        r = pyfuse3.StatvfsData()
        for attr in ('f_bsize', 'f_frsize', 'f_blocks', 'f_bfree', 'f_bavail', 'f_files', 'f_ffree', 'f_favail'):
            setattr(r, attr, getattr(s, attr))
        r.f_namemax = s.f_namemax
        return r


def main():
    mountpoint = sys.argv[1]
    ops = PowercutFS()
    options = set(pyfuse3.default_options)
    options.add('fsname=powercut')
    options.discard('default_permissions')
    pyfuse3.init(ops, mountpoint, options)
    try:
        trio.run(pyfuse3.main)
    finally:
        pyfuse3.close(unmount=True)


if __name__ == '__main__':
    main()
