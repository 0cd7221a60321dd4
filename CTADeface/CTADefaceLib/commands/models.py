"""`ctadeface models list | install | verify | path | remove`."""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "models",
        help="list, install and verify face models",
        description=(
            "Models are nnU-Net v2 results folders kept in a per-user cache "
            "(set CTADEFACE_HOME to move it). Only 'install' uses the network, and every file is "
            "checked against its sha256 before use."
        ),
    )
    sub = parser.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    listing = sub.add_parser("list", help="known models, their size and whether they are installed")
    listing.set_defaults(func=run_list)
    install = sub.add_parser(
        "install",
        help="download or copy a model into the cache and verify it",
        description=(
            "Install NAME from its registered download addresses, or --from a URL (zip or mirror base), a local "
            "zip or a local folder (for hospitals without internet: download the files elsewhere and copy them "
            "over). Any other NAME with --from a folder or zip installs a user-supplied nnU-Net v2 results folder "
            "under that name; its checkpoints are loaded with PyTorch's weights_only loader, so one that holds more "
            "than data is refused. NAME is a name (letters, digits, '-', '_', '.'), never a path. Interrupted "
            "downloads resume."
        ),
    )
    install.add_argument("name", nargs="?", default="cta-deface", help="model name (default: cta-deface)")
    install.add_argument("--from", dest="source", metavar="URL|ZIP|FOLDER", help="where to take the files from")
    install.add_argument("--overwrite", action="store_true", help="reinstall even if installed")
    install.add_argument("--no-progress", action="store_true", help="no progress bar")
    install.set_defaults(func=run_install)
    verify = sub.add_parser("verify", help="re-check every file of an installed model against its sha256")
    verify.add_argument("name", nargs="?", default="cta-deface")
    verify.set_defaults(func=run_verify)
    path = sub.add_parser("path", help="print the installed model's nnU-Net results folder")
    path.add_argument("name", nargs="?", default="cta-deface")
    path.set_defaults(func=run_path)
    remove = sub.add_parser("remove", help="delete an installed model from the cache")
    remove.add_argument("name")
    remove.set_defaults(func=run_remove)


def run_list(args) -> int:
    from ..models.install import all_entries, cache_root, is_installed

    print(f"model cache: {cache_root()}")
    for name, entry in sorted(all_entries().items()):
        state = "installed" if is_installed(name) else "not installed"
        print(f"{name:16s} {state:14s} {entry.total_bytes / 1e6:8.1f} MB  {entry.title}")
        if entry.licence:
            print(f"{'':16s} licence: {entry.licence}")
    return 0


def run_install(args) -> int:
    import sys

    from ..models.install import install

    try:
        folder = install(args.name, args.source, overwrite=args.overwrite, progress=not args.no_progress)
    except KeyboardInterrupt:
        # Nothing is under the model's name yet; a partial download stays hidden in the cache for the rerun.
        print(
            f"ctadeface: interrupted; the model '{args.name}' was not installed (run the same command again: a "
            "download resumes where it stopped).",
            file=sys.stderr,
        )
        return 130
    print(folder)
    return 0


def run_verify(args) -> int:
    from ..models.install import verify

    folder = verify(args.name)
    print(f"{args.name}: every file matches its sha256 ({folder})")
    return 0


def run_path(args) -> int:
    from ..models.install import installed_results_folder

    print(installed_results_folder(args.name)[0])
    return 0


def run_remove(args) -> int:
    from ..models.install import remove

    folder = remove(args.name)
    print(f"removed the model '{args.name}' ({folder})")
    return 0
