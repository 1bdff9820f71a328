from alignbf.cli import main

main()
