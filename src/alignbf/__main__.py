from alignbf.cli.app import main

main()
